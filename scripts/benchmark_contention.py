"""Steps per second of a real pretraining run alone and beside busy processes: does a run keep its
fair share of a machine it shares (a login node, a laptop, a CI runner)?

    python scripts/benchmark_contention.py [--steps 80] [--busy 1] [--streaming] [--threads 1,0] [OVERRIDE ...]

For each torch thread setting (``0`` = PyTorch's default, one per core) the same ``electra-pretrain``
command runs alone, then beside ``--busy`` processes that each keep one core busy. Steps per second
are read from the run's metrics.csv (``train/time`` between the first logged row after step 10 and
the last), so start-up is not counted. One JSON line per setting: steps/s alone and beside, and
``kept`` = beside / alone. On a machine of C cores with B busy processes the fair share is
(C - B) / C of the machine: a run that used every core alone should keep about that much, and a
run on fewer threads than the free cores should keep nearly all of its speed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BUSY = "while True: pass"


def steps_per_s(metrics: Path, skip: int = 10) -> float:
    with metrics.open() as file:
        rows = [(int(r["step"]), float(r["train/time"])) for r in csv.DictReader(file) if r.get("train/time")]
    rows = [r for r in rows if r[0] >= skip]
    (first_step, first_time), (last_step, last_time) = rows[0], rows[-1]
    return (last_step - first_step) / (last_time - first_time)


def pretrain(steps: int, threads: int, overrides: list[str]) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        env = {**os.environ, "WANDB_MODE": "disabled"}
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        command = [
            sys.executable,
            "-m",
            "electra_lit.cli.pretrain",
            f"run_dir={run_dir}",
            f"trainer.max_steps={steps}",
            "trainer.log_every_n_steps=5",
            "print_config=false",
            "logger=csv",
            *overrides,
        ]
        subprocess.run(command, check=True, capture_output=True, env=env)
        return steps_per_s(Path(run_dir) / "metrics.csv")


def beside_busy(busy: int, steps: int, threads: int, overrides: list[str]) -> float:
    workers = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        return pretrain(steps, threads, overrides)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--busy", type=int, default=1, help="processes that each keep one core busy")
    parser.add_argument("--threads", default="0,1", help="OMP_NUM_THREADS settings to compare; 0 = PyTorch's default")
    parser.add_argument("--streaming", action="store_true", help="tokenize on the fly in loader workers")
    parser.add_argument("overrides", nargs="*", help="more electra-pretrain overrides")
    args = parser.parse_args()
    overrides = list(args.overrides)
    if args.streaming:
        from electra_lit.data.pretraining.corpus import builtin_corpus_dir

        overrides += ["data=text", f"data.corpus.paths={builtin_corpus_dir()}", "data.corpus.document=chapter"]
        overrides += ["data.streaming=true", "data.val_documents=5", "tokenizer=bert_uncased"]
    for threads in (int(t) for t in args.threads.split(",")):
        alone = pretrain(args.steps, threads, overrides)
        beside = beside_busy(args.busy, args.steps, threads, overrides)
        print(
            json.dumps(
                {
                    "threads": threads or "default",
                    "cores": os.cpu_count(),
                    "busy": args.busy,
                    "streaming": args.streaming,
                    "steps_per_s_alone": round(alone, 3),
                    "steps_per_s_beside": round(beside, 3),
                    "kept": round(beside / alone, 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
