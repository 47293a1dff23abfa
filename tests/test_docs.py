"""Every command block of the README and docs/ runs, as written, at toy sizes: the docs cannot
drift from the code unnoticed.

Each page runs top to bottom in a scratch "world" folder of its own, as a reader following it
would: a later block sees what an earlier one wrote. The world holds small stand-ins for the
paths the docs name (/data/books, GLUE's folders, an "OpenWebText" dataset, released checkpoints)
and a quickstart run. tests/docs_shim.py stands in for the console scripts: toy model sizes,
2 steps, CPU, and composing only what needs GPUs or SLURM (it says how in its docstring).

A block can carry one directive in an HTML comment on the line just before its fence:
``<!-- docs-test: skip REASON -->`` (the reason is required), ``<!-- docs-test: env NAME=VALUE -->``
(a shell variable the block assumes), ``<!-- docs-test: append ARGS -->`` (ARGS added to each
command line, e.g. fewer benchmark steps). A comment line of a block that is a path under runs/
names a folder the block writes, and must exist after it.
"""

import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from electra_lit.data.pretraining.corpus import builtin_corpus_dir

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHIM = Path(__file__).with_name("docs_shim.py")
SHIMMED = [
    "electra-pretrain",
    "electra-finetune",
    "electra-export",
    "electra-prepare-data",
    "electra-tokenizer",
    "electra-glue-table",
    "pip",
]
FENCE = re.compile(
    r"(?:<!-- docs-test: (?P<directive>\w+) ?(?P<argument>[^\n]*?) ?-->\n[ \t]*)?```(?:bash|sh)\n(?P<body>.*?)```", re.S
)


@dataclass
class Block:
    page: Path
    line: int
    body: str
    directive: str | None
    argument: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text()
    return [
        Block(page, text[: m.start("body")].count("\n"), m["body"], m["directive"], m["argument"])
        for m in FENCE.finditer(text)
    ]


def with_appended(body: str, args: str) -> str:
    """``args`` added at the end of each command line (continuation lines joined first)."""
    lines = body.replace("\\\n", " ").splitlines()
    return "\n".join(f"{line} {args}" if line.strip() and not line.lstrip().startswith("#") else line for line in lines)


# ---------------------------------------------------------------------------------- the world
def write_tsv(path: Path, header: list[str] | None, rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def glue_folder(root: Path, task: dict, rng: random.Random, n: int = 16) -> None:
    """A task's train and dev files in GLUE's TSV layout, as conf/task/<name>.yaml describes it."""
    words = "the house was quite large and very pleasant for the whole family".split()
    labels = task.get("labels", ["0", "1"])
    texts = task.get("tsv_text_columns") or task.get("text_columns", ["sentence"])
    label_column = task.get("tsv_label_column") or task.get("label_column", "label")
    splits = [
        task.get("train", "train"),
        *(s if isinstance(s, str) else s["name"] for s in task.get("validation", ["dev"])),
    ]
    for split in splits:
        rows = []
        for i in range(n):
            value = rng.choice(labels) if labels else round(rng.uniform(0, 5), 2)
            cells = {c: " ".join(rng.sample(words, 6)) for c in texts} | {label_column: value, "index": i}
            rows.append(cells)
        columns = task.get("tsv_columns")
        if columns:  # headerless (CoLA)
            write_tsv(root / f"{split}.tsv", None, [[r.get(c, "x") for c in columns] for r in rows])
        else:
            header = ["index", *texts, label_column]
            write_tsv(root / f"{split}.tsv", header, [[r[c] for c in header] for r in rows])


def austen_paragraphs(limit: int) -> list[str]:
    paragraphs = []
    for novel in sorted(builtin_corpus_dir().glob("*.txt.gz")):
        text = gzip.decompress(novel.read_bytes()).decode()
        paragraphs += [" ".join(p.split()) for p in text.split("\n\n") if len(p.split()) > 8]
    return paragraphs[:limit]


def build_world(world: Path) -> None:
    """The stand-ins for what the docs assume exists (not the runs: see ``template_world``)."""
    paragraphs = austen_paragraphs(3000)
    data = world / "data"
    (data / "books").mkdir(parents=True)
    for i in range(120):  # /data/books: a document per file, more than prepare-data's 100 held out
        (data / "books" / f"book{i:03d}.txt").write_text("\n\n".join(paragraphs[2200 + i * 6 : 2206 + i * 6]) + "\n")
    (data / "a").mkdir()
    (data / "a" / "part.txt").write_text("\n\n".join(paragraphs[200:260]) + "\n")
    (data / "web").mkdir()
    (data / "web" / "page.txt.gz").write_bytes(gzip.compress(("\n\n".join(paragraphs[260:320]) + "\n").encode()))
    (data / "clinical-notes").mkdir()
    (data / "clinical-notes" / "notes.txt").write_text("\n\n".join(paragraphs[320:420]) + "\n")
    with open(data / "docs.jsonl", "w") as f:
        for paragraph in paragraphs[420:560]:
            f.write(json.dumps({"text": paragraph, "body": paragraph}) + "\n")
    owt = world / "Skylion007" / "openwebtext"  # data.corpus.path=Skylion007/openwebtext: a local dataset folder
    owt.mkdir(parents=True)
    with open(owt / "train.jsonl", "w") as f:
        for paragraph in paragraphs:
            f.write(json.dumps({"text": paragraph}) + "\n")
    rng = random.Random(0)
    for conf in sorted((REPO / "conf" / "task").glob("[!_]*.yaml")):
        task = {
            **yaml.safe_load((REPO / "conf" / "task" / "_glue.yaml").read_text()),
            **yaml.safe_load(conf.read_text()),
        }
        if task["glue_folder"]:  # a built-in task (austen_novel) has none
            glue_folder(data / "glue_data" / task["glue_folder"], task, rng)


def environment(world: Path, shims: Path, cache_dir: str) -> dict[str, str]:
    real_bin = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{shims}:{real_bin}:{os.environ['PATH']}",
        "DOCS_WORLD": str(world),
        "DOCS_REAL_BIN": str(real_bin),
        "DOCS_REPO": str(REPO),
        "DOCS_CACHE": cache_dir,
        "WANDB_MODE": "offline",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "COLUMNS": "120",
        "OMP_NUM_THREADS": "1",  # two pages run at once on CI's two cores
    }


def run_script(script: str, cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def failure(result: subprocess.CompletedProcess) -> str:
    """The failed command as the shim ran it, and the end of what it printed."""
    lines = result.stderr.splitlines()
    started = max((i for i, line in enumerate(lines) if line.startswith("[docs test]")), default=0)
    return "\n".join([lines[started] if lines else "", *result.stdout.splitlines()[-10:], *lines[started + 1 :][-25:]])


@pytest.fixture(scope="session")
def shims(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shims")
    for program in SHIMMED:
        path = folder / program
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{SHIM}" {program} "$@"\n')
        path.chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def template_world(tmp_path_factory, shims, cache_dir) -> Path:
    """The world every page starts from: the stand-ins, the quickstart's run, and "released"
    checkpoints (the export of an electra_small-recipe toy run, with BERT's vocabulary) where the
    docs download them: /ckpt/electra-small-{discriminator,generator} and ckpt/{disc,gen}."""
    world = tmp_path_factory.mktemp("world")
    build_world(world)
    (world / "scripts").symlink_to(REPO / "scripts")
    setup = """
        electra-pretrain print_config=false
        electra-pretrain recipe=electra_small print_config=false run_dir=runs/released
        electra-export runs/released/checkpoints/last.ckpt ckpt/released/
        cp -r ckpt/released/discriminator ckpt/disc
        cp -r ckpt/released/generator ckpt/gen
        mv ckpt/released/discriminator ckpt/electra-small-discriminator
        mv ckpt/released/generator ckpt/electra-small-generator
        rm -r runs/released ckpt/released
    """
    result = run_script(setup, world, environment(world, shims, cache_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return world


def test_every_block_is_found_and_every_skip_says_why():
    blocks = [b for page in PAGES for b in blocks_of(page)]
    assert len(blocks) > 30
    for block in blocks:
        assert block.directive in (None, "skip", "env", "append"), f"{block.where}: unknown directive {block.directive}"
        if block.directive == "skip":
            assert len(block.argument.split()) >= 3, f"{block.where}: a skip needs its reason"


def run_page(page: Path, world: Path, env: dict[str, str]) -> str | None:
    """Run ``page``'s blocks in order in ``world``; what went wrong first, or None."""
    for block in blocks_of(page):
        if block.directive == "skip":
            continue
        script = block.body
        if block.directive == "append":
            script = with_appended(script, block.argument)
        if block.directive == "env":
            script = f"{block.argument}\n{script}"
        result = run_script(script, world, env)
        if result.returncode != 0:
            return f"{block.where} failed:\n{block.body}\n{failure(result)}"
        for line in block.body.splitlines():
            named = re.fullmatch(r"\s*#\s*(runs/\S+)", line)
            if named and not (world / named[1]).exists():
                return f"{block.where} names {named[1]}, which it did not write"
    return None


@pytest.mark.slow
def test_every_page_runs(template_world, shims, cache_dir, tmp_path):
    """All pages, two at a time (the longest first), each in a copy of the template world."""

    def run(page: Path) -> str | None:
        world = tmp_path / page.stem
        shutil.copytree(template_world, world, symlinks=True)
        return run_page(page, world, environment(world, shims, cache_dir))

    chosen = os.environ.get("DOCS_PAGES")  # while editing: DOCS_PAGES=README,data runs those pages only
    pages = [p for p in PAGES if not chosen or p.stem in chosen.split(",")]
    pages = sorted(pages, key=lambda p: -sum(b.body.count("\n") for b in blocks_of(p)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(run, pages) if f]
    assert not failures, "\n\n".join(failures)
