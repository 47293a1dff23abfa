"""docs/configuration.md: every key of conf/ has a meaning, and the reference matches conf/."""

import importlib.util
import textwrap

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from electra_lit.config import reference as ref
from electra_lit.cli.entry import config_groups


@pytest.fixture(scope="module")
def tree():
    return ref.ConfTree()


def test_every_key_has_a_meaning(tree):
    missing = tree.missing_meanings()
    assert not missing, (
        "keys without a meaning: add a comment after the value (`key: value  # what it does`) "
        "or on the line above the key, then run `" + ref.REGENERATE + "`:\n"
        + "\n".join(f"  conf/{key.file}:{key.line}: {key.path}" for key in missing)
    )


def test_every_file_says_what_it_is(tree):
    missing = tree.missing_descriptions()
    assert not missing, "files without a leading comment saying what they are:\n" + "\n".join(
        f"  conf/{conf.rel}:1" for conf in missing
    )


def test_reference_is_up_to_date(tree):
    expected = ref.generate(tree)
    actual = ref.DOC_PATH.read_text(encoding="utf-8") if ref.DOC_PATH.is_file() else ""
    assert actual == expected, f"docs/configuration.md is out of date with conf/: run `{ref.REGENERATE}`"


def test_reference_has_every_group_and_option(tree):
    text = ref.generate(tree)
    for group, options in config_groups().items():
        for option in options:
            assert f"#### {group}={option}\n" in text or f"#### {group}: shared by every option ({option}.yaml)" in text
    for entry_point in ref.ENTRY_POINTS.values():
        assert f"### {entry_point} (" in text
    assert "#### hydra/launcher=slurm" in text


def _has_path(node, parts: list[str]) -> bool:
    """Whether a plain nested dict holds a dotted path; keys may themselves contain dots
    (the Optuna search space's `optimizer.lr`)."""
    if not parts:
        return True
    if not isinstance(node, dict):
        return False
    return any(
        ".".join(parts[:n]) in node and _has_path(node[".".join(parts[:n])], parts[n:])
        for n in range(len(parts), 0, -1)
    )


def _plugin(name: str) -> bool:
    return importlib.util.find_spec(f"hydra_plugins.{name}") is not None


def _compositions(tree):
    """(entry point, overrides, files whose keys that composition must hold)."""
    for conf in tree.primaries():
        if conf.name in ref.ENTRY_POINTS:
            yield conf.name, [], [conf, *tree.composed(conf)]
    for group, files in tree.groups().items():
        entry_point = "finetune" if group == "task" else "pretrain"
        for conf in files:
            if conf.name.startswith("_"):
                continue
            if group == "hparams_search" and not _plugin("hydra_optuna_sweeper"):
                continue
            if group == "hydra/launcher" and not _plugin("hydra_submitit_launcher"):
                continue
            yield entry_point, [f"{group}={conf.name}"], [conf, *tree.composed(conf)]


def test_documented_paths_are_where_hydra_puts_them(tree):
    """The dotted paths of the reference exist in the composed configs: packages
    (`# @package _global_`, hydra/launcher) and nesting are read as Hydra reads them."""
    wrong = []
    with initialize_config_module(ref.CONFIG_PACKAGE, version_base="1.3"):
        for entry_point, overrides, files in _compositions(tree):
            cfg = compose(entry_point, overrides=overrides, return_hydra_config=True)
            plain = OmegaConf.to_container(cfg, resolve=False)
            wrong += [
                f"{entry_point} {' '.join(overrides)}: conf/{key.file}:{key.line}: {key.path}"
                for conf in files for key in conf.keys if not _has_path(plain, key.path.split("."))
            ]
    assert not wrong, "documented keys missing from the composed config:\n" + "\n".join(wrong)


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def small_tree(tmp_path):
    _write(tmp_path, "pretrain.yaml", """
        # The entry point; this comment is the file's, not seed's.
        seed: 1  # the seed
        # a comment above,
        # on two lines
        lr: 0.1
        steps: 3  # an inline comment
          # continued below
        # the next key's comment
        warm: ${steps}
        nested:  # a section
          # the first child's comment
          child: [a, {b: c}]
        bare: 1
        """)
    _write(tmp_path, "g/_base.yaml", """
        # A base.
        _target_: pkg.Thing
        size: 2  # how big
        """)
    _write(tmp_path, "g/opt.yaml", """
        # An option.
        defaults: [_base]
        size: 4
        obj:
          _target_: pkg.Obj  # builds an Obj
          _partial_: true
          rel: ${.size}
        """)
    _write(tmp_path, "glob/x.yaml", """
        # @package _global_
        # A global option.
        glob:
          _target_: pkg.G
          k: 1  # a k
        other:
          v: "2"  # a v
        """)
    return ref.ConfTree(tmp_path)


def test_meanings_come_from_the_comments(small_tree):
    entry = small_tree.files["pretrain.yaml"]
    meanings = {key.path: key.meaning for key in entry.keys}
    assert entry.description == ["The entry point; this comment is the file's, not seed's."]
    assert meanings["seed"] == "the seed"
    assert meanings["lr"] == "a comment above, on two lines"
    assert meanings["steps"] == "an inline comment continued below"
    assert meanings["warm"] == "the next key's comment"
    assert meanings["nested"] == "a section"
    assert meanings["nested.child"] == "the first child's comment"
    assert entry.key("nested.child").default == "[a, {b: c}]"
    assert [(k.file, k.line, k.path) for k in small_tree.missing_meanings()] == [("pretrain.yaml", 13, "bare")]


def test_packages_targets_bases_and_interpolations(small_tree):
    base, option, glob = (small_tree.files[rel] for rel in ("g/_base.yaml", "g/opt.yaml", "glob/x.yaml"))
    assert small_tree.is_base(base) and not small_tree.is_base(option)
    assert base.implementation == "pkg.Thing"
    assert option.key("g.size").meaning == "how big"  # from the base it composes
    obj = option.key("g.obj")
    assert (obj.target, obj.partial, obj.meaning) == ("pkg.Obj", True, "builds an Obj")
    assert option.key("g.obj.rel").meaning == "same as `g.obj.size`"
    assert glob.package == "" and glob.implementation == "pkg.G"  # the group's own node builds the option
    assert [key.path for key in glob.keys] == ["glob.k", "other", "other.v"]
    assert glob.key("other.v").default == '"2"'


def test_markdown_of_a_small_tree(small_tree):
    text = ref.generate(small_tree)
    assert text.startswith("# Configuration reference\n")
    assert ref.REGENERATE in text
    assert "| `pretrain.yaml`" not in text
    assert "#### g: shared by every option (_base.yaml)" in text
    assert "| `g.obj` | implemented by `pkg.Obj` (partial) | builds an Obj |" in text
    assert "| `bare` | `1` |  |" in text
    assert "Implementation: `pkg.G`." in text


def test_write_flag(tmp_path, tree):
    out = tmp_path / "configuration.md"
    assert ref.main(["--write", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == ref.generate(tree)
