"""What a run shows: the config tree at the start, a step-based progress bar with throughput, the closing summary."""

import csv
import gzip
import logging
import re
import shlex
import time

import lightning as L
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from rich.console import Console

from conftest import FAST
from electra_lit.data.pretraining.corpus import builtin_corpus_dir
from electra_lit.lit.callbacks.throughput import TOKENS_PER_S
from electra_lit.runs import pretrain
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


def test_the_config_tree_shows_each_setting_once(compose_pretrain, tmp_path):
    console = Console(record=True, width=200)
    console.print(config_tree(compose_pretrain(*FAST)))
    text = console.export_text()
    assert text.count("_target_: electra_lit.data.TextCorpus") == 1  # data.corpus, not the tokenizer's copy
    assert "corpus: ${data.corpus}" in text  # the tokenizer's: a reference to it
    assert text.count(str(tmp_path / "run")) == 1  # run_dir; the trainer, logger and checkpoints refer to it
    assert (
        "default_root_dir: ${local_run_dir}" in text
        and "── local_run_dir" not in text  # derived, and the same as run_dir here: not shown
        and "seed: ${seed}" in text
    )


class BarWatcher(L.Callback):
    """Notes when each epoch starts and the bar's tokens/s after each step (it runs after the bar)."""

    def __init__(self):
        self.epoch_starts, self.rates, self.bar = [], {}, None

    def on_train_epoch_start(self, trainer, pl_module):
        self.epoch_starts.append(time.monotonic())  # rich's clock

    def on_train_batch_end(self, trainer, *args):
        self.bar = trainer.progress_bar_callback
        self.rates[trainer.global_step] = self.bar._tokens_column.rate


@pytest.mark.slow
def test_the_bar_keeps_one_clock_over_epochs_shows_tokens_per_s_at_once_and_fits_120_columns(
    compose_pretrain, tmp_path, capsys, monkeypatch
):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with gzip.open(builtin_corpus_dir() / "persuasion.txt.gz", "rt") as novel:
        text = novel.read()
    for i in range(3):  # a few steps of 8 x 64 tokens per epoch
        (corpus / f"{i}.txt").write_text(text[20_000 + 5000 * i : 25_000 + 5000 * i])
    watcher = BarWatcher()
    make_trainer = pretrain.make_trainer
    monkeypatch.setattr(
        pretrain,
        "make_trainer",
        lambda cfg, run, callbacks=(), remote=None: make_trainer(
            cfg, run, callbacks=[*callbacks, watcher], remote=remote
        ),
    )
    monkeypatch.setenv("COLUMNS", "120")
    pretrain.train(
        compose_pretrain(
            *FAST,
            "data=text",
            f"data.corpus.paths={corpus}",
            "tokenizer=bert_uncased",
            "trainer.max_steps=10",
            "trainer.val_check_interval=5",
            "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1",
            "callbacks.throughput.window_size=20",  # Lightning's rate waits for 20 batch ends
        )
    )
    assert len(watcher.epoch_starts) >= 3
    assert watcher.bar.train_progress_bar.start_time <= watcher.epoch_starts[0]  # the run's clock, not the epoch's
    assert watcher.rates[2] is not None and watcher.rates[2] > 0  # measurable from the second step
    bar = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Training")][-1]
    assert len(bar) <= 120 and "loss:" in bar and "auc:" in bar and "val_auc:" in bar and "val_gain:" in bar, (
        bar
    )  # one line


def test_the_bar_counts_hours_past_a_day_in_hours():
    from electra_lit.lit.callbacks.progress import clock

    assert (clock(93784), clock(5), clock(None)) == ("26:03:04", "0:00:05", "-:--:--")  # not "1 day, 2:03:04"
