"""What tests/test_docs.py puts on PATH in place of the console scripts: the documented command
runs as written, at toy sizes, in a scratch "world" folder.

``python docs_shim.py PROGRAM ARGS...`` rewrites ARGS and runs the real PROGRAM:
- absolute data paths of the docs (/data/..., /shared/..., /scratch/..., /ckpt/..., /tmp/...)
  move into the world folder ($DOCS_WORLD), which holds small stand-ins for them;
- electra-pretrain gets a toy model, 2 steps and the session's tokenizer cache, left out of run
  folder names so that the folders the docs name are the ones written; trainer=gpu becomes
  trainer=cpu; a multirun runs its first jobs only (``fewer_jobs``);
- a SLURM sweep runs here, with Hydra's own launcher; what needs hardware this machine lacks
  (several GPUs, TPUs) is composed, not run: ``--cfg job`` for the sweep's first job;
- ``pip install`` checks that the extras it names exist in pyproject.toml and installs nothing.
"""

from __future__ import annotations

import os
import re
import sys
from importlib.metadata import metadata
from pathlib import Path

MOVED_ROOTS = ("/data/", "/shared/", "/scratch/", "/ckpt/", "/tmp/")

TOY_PRETRAIN = {
    "model.discriminator.num_layers": "2",
    "model.discriminator.hidden_size": "64",
    "model.discriminator.intermediate_size": "256",
    "model.discriminator.embedding_size": "64",
    "model.discriminator.num_heads": "2",
    "global_batch_size": "null",
    "data.max_seq_length": "64",
    "data.batch_size": "4",
    "data.num_workers": "0",
    "trainer.max_steps": "2",
    "trainer.limit_val_batches": "1",
    "hydra.sweeper.n_trials": "2",
}
TOY_FINETUNE = {"task.epochs": "1"}
# trainers this CPU machine cannot run: composed only
NEEDS_HARDWARE = re.compile(r"^trainer=(ddp|fsdp|deepspeed|tpu)$")


def moved(arg: str, world: str) -> str:
    """``arg`` with the docs' absolute data paths moved into the world folder."""
    roots = "|".join(re.escape(root) for root in MOVED_ROOTS)
    return re.sub(rf"(?<![\w.])({roots})", lambda m: f"{world}{m[1]}", arg)


def compose_only(args: list[str]) -> list[str]:
    """``--cfg job`` for the first job of the command (Hydra composes a multirun's jobs one by one)."""
    from electra_lit.runs.preflight import expand_sweeps

    return [*expand_sweeps([a for a in args if not a.startswith("-")])[0], "--cfg", "job"]


def fewer_jobs(args: list[str]) -> list[str]:
    """A multirun cut to toy size: the first swept key keeps its first two values, the others
    their first (``task=cola,sst2,mrpc seed=1,2,3`` runs cola and sst2 with seed 1)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    kept, swept = [], 0
    for arg in args:
        parsed = None if arg.startswith("-") else OverridesParser.create().parse_override(arg)
        if parsed is None or not parsed.is_discrete_sweep():
            kept.append(arg)
            continue
        values = list(parsed.sweep_string_iterator())[: 2 if swept == 0 else 1]
        kept.append(f"{parsed.get_key_element()}={','.join(values)}")
        swept += 1
    return kept


def local(args: list[str]) -> list[str]:
    """A SLURM sweep run here, by Hydra's own launcher: hydra/launcher and its settings left out."""
    return [
        a for a in args if a != "hydra/launcher=slurm" and not a.startswith(("hydra.launcher.", "+hydra.launcher."))
    ]


def toy(program: str, args: list[str], world: str) -> list[str]:
    args = [moved(a, world) for a in args]
    if program not in ("electra-pretrain", "electra-finetune"):
        return args
    args = local(args)
    if any(NEEDS_HARDWARE.match(a) for a in args) and "trainer.accelerator=cpu" not in args:
        return compose_only(args)
    if "-m" in args or "--multirun" in args:
        args = fewer_jobs(args)
    args = ["trainer=cpu" if a == "trainer=gpu" else a for a in args]
    settings = TOY_PRETRAIN if program == "electra-pretrain" else TOY_FINETUNE
    if program == "electra-pretrain":
        settings = {**settings, "cache_dir": os.environ["DOCS_CACHE"]}
    if not any(a.startswith("hparams_search=") for a in args):
        settings = {k: v for k, v in settings.items() if not k.startswith("hydra.sweeper")}
    if "data=shards" in args:  # prepared shards fix the sequence length
        settings = {k: v for k, v in settings.items() if k != "data.max_seq_length"}
    return [*args, *(f"{k}={v}" for k, v in settings.items()), unnamed(settings)]


def unnamed(settings: dict[str, str]) -> str:
    """The override that leaves the toy settings out of run folder names (conf/common.yaml's list, plus them)."""
    from electra_lit.runs.naming import keys_not_in_run_names

    keys = [*keys_not_in_run_names(), *(k for k in settings if k not in keys_not_in_run_names())]
    return f"hydra.job.config.override_dirname.exclude_keys=[{','.join(keys)}]"


def pip(args: list[str]) -> int:
    """``pip install`` of this project: the extras it names must exist; nothing is installed."""
    extras = metadata("electra_lit").get_all("Provides-Extra") or []
    for arg in args:
        for named in re.findall(r"\[([\w,\s-]+)\]", arg):
            missing = [e.strip() for e in named.split(",") if e.strip() not in extras]
            if missing:
                print(f"pip (docs test): no extra {missing} in pyproject.toml", file=sys.stderr)
                return 1
    return 0


def main() -> None:
    program, args = sys.argv[1], sys.argv[2:]
    if program == "pip":
        sys.exit(pip(args))
    real = Path(os.environ["DOCS_REAL_BIN"]) / program
    args = toy(program, args, os.environ["DOCS_WORLD"])
    print(f"[docs test] {program} {' '.join(args)}", file=sys.stderr, flush=True)
    os.execv(real, [str(real), *args])


if __name__ == "__main__":
    main()
