"""scripts/plot_runs.py: PNG curves from runs' metrics.csv, and errors that name the path or metric."""

import csv
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_runs.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


plot_runs = load_script("plot_runs")

TRAIN = [
    "train/loss",
    "train/gen_loss",
    "train/disc_loss",
    "train/gen_acc",
    "train/disc_acc",
    "train/disc_auc",
    "train/replaced_frac",
    "train/lr",
]
VAL = [
    "val/loss",
    "val/gen_loss",
    "val/disc_loss",
    "val/gen_acc",
    "val/disc_acc",
    "val/disc_auc",
    "val/disc_gain",
    "val/replaced_frac",
]
PERF = ["perf/tokens_per_s", "perf/samples_per_s"]


def write_metrics(run_dir: Path, scale: float, perf: bool = True, steps: int = 30) -> Path:
    """A metrics.csv laid out as Lightning writes it: training rows every step, validation rows
    apart (every 10 steps), empty cells for what a row does not log."""
    run_dir.mkdir(parents=True)
    columns = ["epoch", *(PERF if perf else []), "step", *TRAIN, *VAL]
    rows = []
    for step in range(steps):
        row = {"epoch": 0, "step": step}
        row.update({name: scale * (40 - step) if "loss" in name else 0.01 * step for name in TRAIN})
        row["train/replaced_frac"] = 0.15
        if perf and step >= 10:
            row.update({"perf/tokens_per_s": scale * 4000 + step, "perf/samples_per_s": scale * 30})
        rows.append(row)
        if step % 10 == 9:
            rows.append(
                {"epoch": 0, "step": step, **{name: scale * (0.5 if "loss" not in name else 30) for name in VAL}}
            )
    with open(run_dir / "metrics.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return run_dir


@pytest.fixture
def runs(tmp_path):
    return [
        write_metrics(tmp_path / "runs" / "masking.mask_prob=0.15", scale=1.0),
        write_metrics(tmp_path / "runs" / "masking.mask_prob=0.25", scale=0.9, perf=False),
    ]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert width > 300 and height > 200
    assert len(data) > 10_000, f"{path} is {len(data)} bytes: an empty figure?"


def test_one_png_per_group(runs, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots"
    assert plot_runs.main([*map(str, runs), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["accuracies.png", "detection.png", "losses.png", "throughput.png"]
    for png in out.iterdir():
        assert_png(png)
    printed = capsys.readouterr().out
    assert "losses.png: train/disc_loss, train/gen_loss, train/loss, val/disc_loss" in printed
    assert "detection.png: train/disc_auc, val/disc_auc, val/disc_gain" in printed
    assert "throughput.png: perf/samples_per_s, perf/tokens_per_s" in printed  # only the first run has them


def test_chosen_metrics_labels_and_smoothing(runs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "chosen"
    args = [
        *map(str, runs),
        "--out",
        str(out),
        "--metrics",
        "train/loss",
        "train/lr",
        "--labels",
        "15%",
        "25%",
        "--smooth",
        "0.6",
    ]
    assert plot_runs.main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["losses.png", "other.png"]
    assert_png(out / "other.png")


def test_a_run_with_only_some_columns(tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "seed=1"
    run.mkdir()
    (run / "metrics.csv").write_text("epoch,step,train/loss\n0,0,5.0\n0,1,4.0\n0,2,3.5\n")
    assert plot_runs.main([str(run / "metrics.csv"), "--out", str(tmp_path / "out")]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["losses.png"]


@pytest.mark.slow
def test_command_line(runs, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, runs), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert_png(out / "losses.png")


def test_run_dir_without_metrics(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        plot_runs.main([str(runs[0]), str(empty)])
    assert exit_info.value.code == 2
    assert f"{empty / 'metrics.csv'}: no such file" in capsys.readouterr().err


def test_sweep_folder_names_its_runs(runs, capsys):
    with pytest.raises(SystemExit):
        plot_runs.main([str(runs[0].parent)])
    err = capsys.readouterr().err
    assert "masking.mask_prob=0.15, masking.mask_prob=0.25 have one" in err


def test_unknown_metric_lists_what_exists(runs, capsys):
    with pytest.raises(SystemExit):
        plot_runs.main([*map(str, runs), "--metrics", "train/loss", "val/nope"])
    err = capsys.readouterr().err
    assert "no run has metric 'val/nope'" in err
    assert "the metrics are: perf/samples_per_s, perf/tokens_per_s, train/disc_acc" in err


def test_labels_must_match_runs(runs, capsys):
    with pytest.raises(SystemExit):
        plot_runs.main([*map(str, runs), "--labels", "only-one"])
    assert "--labels has 1 labels for 2 runs" in capsys.readouterr().err


def test_validation_rows_apart_from_training_rows(runs):
    series = plot_runs.read_metrics(runs[0] / "metrics.csv")
    assert series["val/loss"][0] == [9.0, 19.0, 29.0]
    assert len(series["train/loss"][0]) == 30
    assert series["perf/tokens_per_s"][0][0] == 10.0


def test_metric_groups_and_labels(tmp_path):
    assert [
        plot_runs.metric_group(n)
        for n in [
            "train/gen_loss",
            "val/disc_acc",
            "val/accuracy_mm",
            "perf/tokens_per_s",
            "train/device/items_per_sec",
            "train/device/mfu",
            "train/lr",
        ]
    ] == ["losses", "accuracies", "accuracies", "throughput", "throughput", "throughput", "other"]
    assert plot_runs.run_labels([Path("/r/a/default"), Path("/r/b/default")]) == ["a/default", "b/default"]
    assert plot_runs.run_labels([Path("/r/seed=1"), Path("/r/seed=2")]) == ["seed=1", "seed=2"]
