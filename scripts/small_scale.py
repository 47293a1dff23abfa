"""Small-scale experiments: which settings make the discriminator learn in minutes on a CPU?

    python scripts/small_scale.py [--settings default,temperature_1.5,...] [--jobs 2] [--out runs/small_scale]
                                  [--table docs/small_scale.table.md] [OVERRIDE ...]

Each named setting in ``SETTINGS`` is a list of ``electra-pretrain`` overrides on top of the
quickstart (the default recipe) and the OVERRIDEs given here. Each runs in its own process with
``OMP_NUM_THREADS = cores / jobs`` (``--jobs`` of them at a time), into ``--out/<setting>``; a
setting whose folder already holds a complete run is read, not re-run. The table has one row per
setting and validation step: val AUC, disc_gain and gen_acc (see electra_lit.lit.modules.metrics),
the step and the run's wall-clock seconds at that step (``train/time`` of metrics.csv; the time
of runs sharing the machine, so compare seconds only within one invocation).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# setting name -> overrides; each is one knob away from the quickstart
SETTINGS: dict[str, list[str]] = {
    "default": [],
    "temperature_1.5": ["objective.temperature=1.5"],
    "temperature_0.5": ["objective.temperature=0.5"],
    "disc_weight_10": ["objective.disc_weight=10"],
    "disc_weight_100": ["objective.disc_weight=100"],
    "generator_fraction_0.5": ["model.generator_fraction=0.5"],
    "generator_layers_2": ["+model.generator.num_layers=2"],
    "generator_lr_0.5x": ["optimizer.generator_lr_scale=0.5"],
    "generator_lr_2x": ["optimizer.generator_lr_scale=2.0"],
    "untied": ["model.embedding_sharing=untied"],
    "share_all": ["model.embedding_sharing=all", "model.generator_fraction=1.0"],
    "share_all_seq_64_batch_16_steps_1600": [
        "model.embedding_sharing=all",
        "model.generator_fraction=1.0",
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=1600",
        "trainer.val_check_interval=400",
    ],
    "gdes": ["model.embedding_sharing=gdes", "objective.disc_weight=10"],
    "generator_embedding_stopgrad": ["model.generator_embedding_grad=false"],
    "seq_64_batch_64": ["data.max_seq_length=64", "global_batch_size=64"],
    "batch_64": ["global_batch_size=64"],
    "batch_16": ["global_batch_size=16"],
    "dropout_0.1": ["model.discriminator.dropout=0.1"],
    "lr_1e-3": ["optimizer.lr=1e-3"],
    "lr_2e-3_warmup_200": ["optimizer.lr=2e-3", "lr_schedule.warmup_steps=200"],
    "mask_0.25": ["masking.mask_prob=0.25"],
    # the same wall time as the quickstart, spent on more, smaller steps
    "seq_64_steps_800": ["data.max_seq_length=64", "trainer.max_steps=800", "trainer.val_check_interval=200"],
    "batch_16_steps_800": ["global_batch_size=16", "trainer.max_steps=800", "trainer.val_check_interval=200"],
    # four times the quickstart's steps: does the discriminator leave the prior given time?
    "steps_1600": ["trainer.max_steps=1600", "trainer.val_check_interval=400"],
    "temperature_1.5_steps_1600": [
        "objective.temperature=1.5",
        "trainer.max_steps=1600",
        "trainer.val_check_interval=400",
    ],
    "seq_64_batch_16_steps_1600": [
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=1600",
        "trainer.val_check_interval=400",
    ],
    "seq_64_batch_16_steps_1600_lr_1e-3": [
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=1600",
        "trainer.val_check_interval=400",
        "optimizer.lr=1e-3",
    ],
    # longer and faster: candidate 15-minute recipes (a smaller vocab makes bigram statistics denser)
    "seq_64_batch_16_steps_3000_lr_2e-3": [
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=3000",
        "trainer.val_check_interval=500",
        "optimizer.lr=2e-3",
        "lr_schedule.warmup_steps=200",
    ],
    "vocab_2k_seq_64_batch_16_steps_3000_lr_2e-3": [
        "tokenizer.vocab_size=2048",
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=3000",
        "trainer.val_check_interval=500",
        "optimizer.lr=2e-3",
        "lr_schedule.warmup_steps=200",
    ],
    "stopgrad_seq_64_batch_16_steps_3000": [
        "model.generator_embedding_grad=false",
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=3000",
        "trainer.val_check_interval=500",
    ],
    "temperature_1.5_seq_64_batch_16_steps_3000": [
        "objective.temperature=1.5",
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=3000",
        "trainer.val_check_interval=500",
    ],
    # quickstart candidates: about 3 minutes of CPU
    "temperature_1.5_seq_64_batch_16_steps_1000_generator_lr_2x": [
        "objective.temperature=1.5",
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=1000",
        "trainer.val_check_interval=250",
        "optimizer.generator_lr_scale=2.0",
    ],
    "temperature_1.5_seq_64_batch_16_steps_1000_lr_7e-4": [
        "objective.temperature=1.5",
        "data.max_seq_length=64",
        "global_batch_size=16",
        "trainer.max_steps=1000",
        "trainer.val_check_interval=250",
        "optimizer.lr=7e-4",
    ],
}
COLUMNS = ("val/disc_auc", "val/disc_gain", "val/gen_acc")


def run(name: str, overrides: list[str], out: Path, threads: int, extra: list[str]) -> Path:
    run_dir = out / name
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "disabled"}
    command = [
        sys.executable,
        "-m",
        "electra_lit.cli.pretrain",
        f"run_dir={run_dir}",
        "print_config=false",
        "logger=csv",
        "trainer.log_every_n_steps=10",
        *extra,
        *overrides,
    ]
    log = out / f"{name}.log"
    with log.open("w") as file:
        done = subprocess.run(command, stdout=file, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        print(f"{name}: failed (exit {done.returncode}), see {log}", file=sys.stderr)
    return run_dir


def rows_of(run_dir: Path) -> list[dict[str, float]]:
    """One row per validation: the step, the wall seconds then, and COLUMNS."""
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return []
    rows = list(csv.DictReader(metrics.open()))
    seconds = {int(r["step"]): float(r["train/time"]) for r in rows if r.get("train/time")}
    table = []
    for r in rows:
        if not r.get(COLUMNS[0]):
            continue
        step = int(r["step"])
        near = min(seconds, key=lambda s: abs(s - step)) if seconds else None
        values = {c: float(r[c]) if r.get(c) else float("nan") for c in COLUMNS}
        table.append({"step": step + 1, "seconds": seconds.get(near, float("nan")), **values})
    return table


def markdown(results: dict[str, list[dict[str, float]]], final_only: bool) -> str:
    lines = ["| setting | step | seconds | val AUC | val disc_gain | val gen_acc |", "|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for row in rows[-1:] if final_only else rows:
            lines.append(
                f"| {name} | {row['step']} | {row['seconds']:.0f} | {row['val/disc_auc']:.3f} "
                f"| {row['val/disc_gain']:.3f} | {row['val/gen_acc']:.3f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names from SETTINGS")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time; each gets cores / jobs threads")
    parser.add_argument("--out", type=Path, default=Path("runs/small_scale"))
    parser.add_argument("--table", type=Path, default=None, help="also write the markdown table here")
    parser.add_argument("--final-only", action="store_true", help="one row per setting: its last validation")
    args, extra = parser.parse_known_args(argv)
    names = [n for n in args.settings.split(",") if n]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {n: pool.submit(run, n, SETTINGS[n], args.out, threads, extra) for n in names}
        results = {n: rows_of(f.result()) for n, f in futures.items()}
    table = markdown(results, args.final_only)
    print(table)
    if args.table:
        args.table.write_text(table + "\n")


if __name__ == "__main__":
    main()
