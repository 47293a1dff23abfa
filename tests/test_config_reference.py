"""docs/configuration.md: every schema field and every key conf/ sets has a meaning, and the
reference matches the schemas and conf/."""

import importlib.util
import textwrap
from dataclasses import dataclass, field
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from electra_lit.cli.entry import config_groups
from electra_lit.config import reference as ref


@pytest.fixture(scope="module")
def tree():
    return ref.ConfTree()


def test_every_key_has_a_meaning(tree):
    missing = tree.missing()
    assert not missing, (
        "without a meaning: give a schema field a comment at the end of its line, a YAML key a comment "
        "after its value (`key: value  # what it does`), a file a leading comment; then run `"
        + ref.REGENERATE
        + "`:\n"
        + "\n".join(f"  {problem}" for problem in missing)
    )


def test_reference_is_up_to_date(tree):
    expected = ref.generate(tree)
    actual = ref.DOC_PATH.read_text(encoding="utf-8") if ref.DOC_PATH.is_file() else ""
    assert actual == expected, f"docs/configuration.md is out of date: run `{ref.REGENERATE}`"


def test_reference_has_every_entry_point_group_and_option(tree):
    text = ref.generate(tree)
    for group, options in config_groups().items():
        assert f"### Group: {group}\n" in text or not options  # hydra/: its launcher group
        for option in options:
            assert f"#### {group}={option}\n" in text
    for name, command in ref.ENTRY_POINTS.items():
        assert f"### {command} ({name}.yaml)" in text
    assert "#### hydra/launcher=slurm" in text and "#### task: shared by every option (_glue.yaml)" in text
    assert "| `masking.mask_prob` | `float` | `0.15` | share of real tokens the generator predicts" in text


def _plugin(name: str) -> bool:
    return importlib.util.find_spec(f"hydra_plugins.{name}") is not None


def _compositions(tree):
    """(entry point, overrides, the keys that composition must hold)."""
    for name in ref.ENTRY_POINTS:
        keys = [key.path for key in tree.schemas[name]] + list(tree.files[f"{name}.yaml"].values)
        yield name, [], keys
    for group, files in tree.groups().items():
        if group == "hydra/launcher" and not _plugin("hydra_submitit_launcher"):
            continue
        for conf in files:
            if not conf.name.startswith("_"):
                yield ("finetune" if group == "task" else "pretrain"), [f"{group}={conf.name}"], list(conf.values)


def _has_path(node, parts: list[str]) -> bool:
    """Whether a plain nested dict holds a dotted path; keys may hold dots (Optuna's `optimizer.lr`)."""
    if not parts:
        return True
    return isinstance(node, dict) and any(
        ".".join(parts[:n]) in node and _has_path(node[".".join(parts[:n])], parts[n:])
        for n in range(len(parts), 0, -1)
    )


@pytest.mark.slow
def test_documented_keys_are_where_hydra_puts_them(tree):
    """Schema keys and the values the files set are at their documented paths in the composed
    configs: packages (`# @package _global_`, hydra/launcher) are read as Hydra reads them."""
    wrong = []
    with initialize_config_module(ref.CONFIG_PACKAGE, version_base="1.3"):
        for entry_point, overrides, keys in _compositions(tree):
            required = ["init_from=x"] if entry_point == "finetune" else []
            cfg = compose(entry_point, overrides=[*required, *overrides], return_hydra_config=True)
            plain = OmegaConf.to_container(cfg, resolve=False)
            wrong += [
                f"{entry_point} {' '.join(overrides)}: {key}" for key in keys if not _has_path(plain, key.split("."))
            ]
    assert not wrong, "documented keys missing from the composed config:\n" + "\n".join(wrong)


# ------------------------------------------------------------------ the generator on a small tree
@dataclass
class Inner:
    size: int = 2  # how big
    rate: float = 0.5


@dataclass
class Toy:
    seed: int = 1  # the seed
    inner: Inner = field(default_factory=Inner)  # a nested part
    trainer: Any = None  # an open node
    name: str = "???"  # required


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def small_tree(tmp_path):
    _write(
        tmp_path,
        "pretrain.yaml",
        """
        # The entry point; this comment is the file's, not a key's.
        #   toy-command key=value
        defaults:
          - toy_schema
          - g: opt
        seed: 3
        trainer:
          steps: 3  # an inline comment
            # continued below
          # the next key's comment,
          # on two lines
          warm: ${trainer.steps}
          bare: 1
        """,
    )
    _write(
        tmp_path,
        "g/_base.yaml",
        """
        # @package _global_
        # A base.
        trainer:
          size: 2  # how big, for the trainer
        """,
    )
    _write(
        tmp_path,
        "g/opt.yaml",
        """
        # @package _global_
        # An option.
        defaults: [_base]
        trainer:
          size: 4
          link: ${seed}
          obj:
            _target_: pkg.Obj  # builds an Obj
            args: {a: 1}  # its arguments
        inner:
          size: 5
        """,
    )
    return ref.ConfTree(tmp_path, schemas={"pretrain": Toy})


def test_schema_keys_come_from_the_fields():
    keys = {key.path: key for key in ref.schema_keys(Toy)}
    assert list(keys) == ["seed", "inner", "inner.size", "inner.rate", "trainer", "name"]
    assert (keys["seed"].type, keys["seed"].default, keys["seed"].doc) == ("int", 1, "the seed")
    assert (keys["trainer"].type, keys["inner.size"].doc, keys["name"].default) == ("open", "how big", "???")
    assert keys["inner.rate"].doc == "" and keys["inner.rate"].where.startswith("tests/test_config_reference.py:")


def test_meanings_of_what_the_files_set(small_tree):
    entry, option = small_tree.files["pretrain.yaml"], small_tree.files["g/opt.yaml"]
    assert entry.description == ["The entry point; this comment is the file's, not a key's.", "  toy-command key=value"]
    assert entry.defaults == ["toy_schema", "g=opt"] and option.defaults == ["_base"]
    assert small_tree.meaning("seed", entry) == "the seed"  # a typed key: the schema's
    assert small_tree.meaning("trainer.steps", entry) == "an inline comment continued below"
    assert small_tree.meaning("trainer.warm", entry) == "the next key's comment, on two lines"
    assert small_tree.meaning("trainer.size", option) == "how big, for the trainer"  # from the base it composes
    assert small_tree.meaning("trainer.link", option) == "same as `seed`"
    assert small_tree.meaning("inner.size", option) == "how big"
    assert option.values["trainer.obj"] == ref.Target("pkg.Obj") and option.values["trainer.obj.args"] == {"a": 1}
    assert small_tree.meaning("trainer.obj", option) == "builds an Obj"
    rate = next(key for key in ref.schema_keys(Toy) if key.path == "inner.rate")
    assert small_tree.missing() == sorted(["conf/pretrain.yaml:13: trainer.bare", f"{rate.where}: inner.rate"])


def test_markdown_of_a_small_tree(small_tree):
    text = ref.generate(small_tree)
    assert text.startswith("# Configuration reference\n") and ref.REGENERATE in text
    assert "```bash\ntoy-command key=value\n```" in text
    assert "| `inner.size` | `int` | `2` | how big |" in text
    assert "| `name` | `str` | `???` | required |" in text
    assert "#### g=opt\n" in text and "#### g: shared by every option (_base.yaml)\n" in text
    assert "| `trainer.obj` | implemented by `pkg.Obj` | builds an Obj |" in text
    assert "| `trainer.bare` | `1` |  |" in text


def test_write_flag(tmp_path, tree):
    out = tmp_path / "configuration.md"
    assert ref.main(["--write", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == ref.generate(tree)
