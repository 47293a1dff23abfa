"""scripts/compare_objectives.py: objectives pretrained at one compute budget, fine-tuned on
task=austen_novel, tabled and plotted; finished runs are read, not redone."""

import csv
import json
from pathlib import Path

import pytest

from conftest import load_script
from electra_lit.lit.callbacks.throughput import FLOPS_TOTAL
from electra_lit.runs.run_dir import RunDir

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


compare = load_script("compare_objectives")

# toy sizes: a 2-layer, 32-wide pair on 32-token sequences for 6 steps; 4 fine-tuning batches
TOY_PRETRAIN = [
    "model.discriminator.num_layers=2",
    "model.discriminator.hidden_size=32",
    "model.discriminator.intermediate_size=64",
    "model.discriminator.embedding_size=32",
    "data.max_seq_length=32",
    "global_batch_size=8",
    "data.num_workers=0",
    "trainer.max_steps=6",
    "trainer.limit_val_batches=1",
]
TOY_FINETUNE = "task.epochs=1 max_seq_length=32 ++trainer.limit_train_batches=4 trainer.limit_val_batches=4"


def last_flops(run: RunDir) -> tuple[int, float]:
    """(steps, perf/flops_total) of the run's last row with the total."""
    with run.metrics.open() as file:
        row = [r for r in csv.DictReader(file) if r.get(FLOPS_TOTAL)][-1]
    return int(row["step"]) + 1, float(row[FLOPS_TOTAL])


@pytest.mark.slow
def test_two_objectives_get_the_reference_budget_and_a_table_and_plot(tmp_path, cache_dir, capsys):
    out, table, png = tmp_path / "out", tmp_path / "table.md", tmp_path / "plot.png"
    arguments = ["--objectives", "electra,mlm", "--seeds", "1", "--jobs", "2", "--out", str(out)]
    arguments += ["--table", str(table), "--plot", str(png), "--finetune-overrides", TOY_FINETUNE]
    assert compare.main([*arguments, f"cache_dir={cache_dir}", *TOY_PRETRAIN]) == 0

    # the budget is what electra spends in its 6 steps; mlm, cheaper per step, takes more steps
    steps, budget = last_flops(RunDir(out / "pretrain" / "electra"))
    assert steps == 6
    mlm_steps, mlm_flops = last_flops(RunDir(out / "pretrain" / "mlm"))
    per_step = mlm_flops / mlm_steps
    assert mlm_steps > steps and budget <= mlm_flops < budget + per_step  # within one of its steps
    printed = capsys.readouterr().out
    assert f"budget: budget.flops={budget!r} for every objective" in printed

    lines = table.read_text().splitlines()
    assert lines[0].split(" | ")[1:] == [
        "pretraining steps",
        "pretraining FLOPs",
        "seconds",
        "dev accuracy median",
        "spread min-max",
        "per seed |",
    ]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in lines[2:] if line.startswith("|")}
    assert list(rows) == ["electra", "mlm"]
    assert rows["electra"][:2] == ["6", f"{budget:.3g}"] and rows["mlm"][:2] == [str(mlm_steps), f"{mlm_flops:.3g}"]
    scores = {
        name: json.loads(RunDir(out / "finetune" / name / "seed1").results.read_text())["metrics"]["accuracy"]
        for name in rows
    }
    for name, accuracy in scores.items():
        assert rows[name][3:] == [f"{accuracy:.3f}", f"{accuracy:.3f}-{accuracy:.3f}", f"{accuracy:.3f} |"]
    assert "\n".join(lines) in printed
    # after the table and a blank line, electra's verdict against mlm (one seed each: no spread)
    difference = scores["electra"] - scores["mlm"]
    word = "within the seed spread of" if difference == 0 else "beats" if difference > 0 else "is beaten by"
    assert lines[4:] == ["", f"electra {word} mlm: median {difference:+.3f}, seed spread 0.000"]
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def fake_finished(out: Path, names: list[str]) -> None:
    """Records and results.json as a finished comparison leaves them (seed 1 only)."""
    (out / "pretrain").mkdir(parents=True)
    for n, name in enumerate(names):
        record = {"steps": 400 + n, "flops": 1.5e12, "seconds": 60.0}
        (out / "pretrain" / f"{name}.json").write_text(json.dumps(record))
        results = RunDir(out / "finetune" / name / "seed1").results
        results.parent.mkdir(parents=True)
        results.write_text(json.dumps({"metric": "accuracy", "metrics": {"accuracy": 0.5 + n / 10}}))


def test_finished_runs_are_read_not_run_again(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    fake_finished(out, ["electra", "mlm"])
    monkeypatch.setattr(compare, "launch", lambda *args: pytest.fail(f"launched {args}"))
    assert (
        compare.main(["--objectives", "electra,mlm", "--seeds", "1", "--out", str(out), "--budget-flops", "1.5e12"])
        == 0
    )
    table = capsys.readouterr().out
    assert "| electra | 400 | 1.5e+12 | 60 | 0.500 | 0.500-0.500 | 0.500 |" in table
    assert "| mlm | 401 | 1.5e+12 | 60 | 0.600 | 0.600-0.600 | 0.600 |" in table
    assert "electra is beaten by mlm: median -0.100, seed spread 0.000" in table
    assert json.loads((out / "plan.json").read_text())["budget"] == ["budget.flops=1500000000000.0"]


def test_a_folder_made_with_another_budget_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"budget": ["budget.flops=1e+12"], "pretrain": [], "finetune": []}))
    with pytest.raises(SystemExit, match="holds runs made with .*budget.flops=1e\\+12.*: use another --out"):
        compare.main(["--out", str(out), "--minutes", "15"])


def test_unknown_objectives_and_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        compare.main(["--objectives", "electra,bert"])
    assert "no objective ['bert']; choose from all_tokens_mlm, electra" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.main(["--budget-flops", "1e12", "--minutes", "5"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_minutes_become_lightnings_max_time():
    assert compare.max_time(15) == "00:00:15:00"
    assert compare.max_time(90.5) == "00:01:30:30"


def test_each_objective_is_judged_against_mlm_by_the_seed_spread():
    accuracy = {
        "electra": [0.80, 0.82, 0.81],  # median 0.81, spread 0.02
        "mlm": [0.70, 0.74, 0.72],  # median 0.72, spread 0.04
        "electra_15": [0.70, 0.75, 0.73],  # median +0.01: inside the wider spread (0.05)
        "all_tokens_mlm": [0.60, 0.61, None],  # a failed seed is left out; median 0.605
        "random_init": [None],  # no score: no line
    }
    lines = compare.verdicts(list(accuracy), accuracy)
    assert lines == [
        "electra beats mlm: median +0.090, seed spread 0.040",
        "electra_15 within the seed spread of mlm: median +0.010, seed spread 0.050",
        "all_tokens_mlm is beaten by mlm: median -0.115, seed spread 0.040",
    ]
    assert compare.verdicts(["electra"], {"electra": [0.8]}) == []  # no mlm, no verdicts
