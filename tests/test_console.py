"""What a run shows: the config tree at the start, a step-based progress bar with throughput, the closing summary."""

import csv
import logging
import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from rich.console import Console

from conftest import FAST
from electra_lit.lit.callbacks.throughput import TOKENS_PER_S
from electra_lit.runs.console import config_tree
from electra_lit.runs.pretrain import train
from electra_lit.runs.summary import override

SAMPLES_PER_S = "train/device/samples_per_sec"  # Lightning's name for sequences per second


def test_config_tree_shows_every_top_level_key_with_resolved_values(compose_pretrain, tmp_path):
    cfg = compose_pretrain(*FAST, "masking.mask_prob=0.25")
    console = Console(record=True, width=120)
    console.print(config_tree(cfg))
    text = console.export_text()
    for key in cfg:
        assert f"{key}" in text, key
    assert "mask_prob: 0.25" in text and f"run_dir: {tmp_path / 'run'}" in text  # resolved, not ${...}
    assert text.index("run_dir") < text.index("model") < text.index("trainer")


def test_long_values_wrap_in_a_narrow_terminal_and_are_never_cropped(compose_pretrain, tmp_path):
    run_dir = tmp_path / ("masking.mask_prob=0.25,trainer.max_steps=300," * 3 + "seed=1")
    cfg = compose_pretrain(*FAST, f"run_dir='{run_dir}'", f"data.shards='{run_dir}'")
    console = Console(record=True, width=60)
    console.print(config_tree(cfg))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 60
    unwrapped = "".join(line.strip(" │├└─") for line in lines)
    assert f"run_dir:{run_dir}" in unwrapped  # a top-level value, folded
    assert f"shards:{run_dir}" in unwrapped  # inside a group's YAML, folded


@pytest.mark.slow
def test_a_run_prints_its_config_counts_steps_and_logs_throughput(compose_pretrain, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero")
    train(
        compose_pretrain(
            *FAST,
            "trainer.max_steps=6",
            "trainer.val_check_interval=3",
            "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1",
            "callbacks.throughput.window_size=2",
        )
    )
    out = capsys.readouterr().out
    assert "GPU available" in caplog.text and "Tip" not in caplog.text  # Lightning's infos, less its ads
    assert "config" in out and "mask_prob: 0.15" in out  # the tree, before training
    assert "Training" in out and "6/6" in out and "Epoch" not in out  # steps to max_steps, not epochs
    bar = [line for line in out.splitlines() if line.startswith("Training")][-1]
    assert re.search(r" [0-9.]+k? tok/s ", bar) and "it/s" not in bar  # speed in tokens, in its own column
    assert "items_per_sec" not in out  # not repeated among the metrics
    assert "Pretraining stopped at step 6 of 6." in out
    assert f"export      electra-export {tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}" in out

    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    rates = {int(r["step"]): float(r[TOKENS_PER_S]) for r in rows if r.get(TOKENS_PER_S)}
    samples = {int(r["step"]): float(r[SAMPLES_PER_S]) for r in rows if r.get(SAMPLES_PER_S)}
    assert set(range(1, 6)) <= set(rates) and min(rates.values()) > 0  # a window of 2 batch ends: from the 2nd batch on
    assert all(rates[step] / samples[step] == pytest.approx(64) for step in rates)  # FAST: 64 tokens per sequence
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and not [key for key in rows[0] if key.startswith("validate/")]  # training only
    assert "train/device/mfu" not in rows[0]  # the CPU's peak FLOP/s is unknown


def test_the_summary_quotes_run_folders_named_after_overrides():
    folder = "runs/pretrain/masking.mask_prob=0.25,seed=1"
    (argument,) = shlex.split(override("run_dir", folder))  # as the shell passes it on
    parsed = OverridesParser.create().parse_overrides([argument])[0]
    assert parsed.key_or_group == "run_dir" and parsed.value() == folder
    assert override("run_dir", "runs/pretrain/default") == "run_dir=runs/pretrain/default"
    assert override("run_dir", folder) == f"\"run_dir='{folder}'\""  # readable when it can be
    for odd in ("runs/pretrain/data.corpus.paths=/data/o'neil,seed=1", "runs/$HOME,a=1"):
        (argument,) = shlex.split(override("run_dir", odd))
        assert OverridesParser.create().parse_overrides([argument])[0].value() == odd
