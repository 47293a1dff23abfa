"""What a wheel install needs: every config group, the built-in corpus and vocab, as package data."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_config_group_is_a_listed_package():
    pyproject = (ROOT / "pyproject.toml").read_text()
    groups = [p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and not p.name.startswith("__")]
    missing = [g for g in groups if f'"electra_lit.conf.{g}"' not in pyproject]
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


@pytest.mark.slow
def test_wheel_holds_configs_corpus_and_vocab(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("electra_lit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for conf in (ROOT / "conf").rglob("*.yaml"):
        assert f"electra_lit/conf/{conf.relative_to(ROOT / 'conf')}" in names
    assert len([n for n in names if n.startswith("electra_lit/assets/austen/") and n.endswith(".txt.gz")]) == 6
    assert "electra_lit/assets/vocab/bert-base-uncased-vocab.txt" in names
