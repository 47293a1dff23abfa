"""ELECTRA against MLM at equal compute: pretrain each objective on the same budget, fine-tune each
on the built-in task, and table the dev accuracy.

    python scripts/compare_objectives.py [--objectives electra_tiny,electra,mlm,electra_15,all_tokens_mlm]
        [--budget-flops F | --minutes M] [--seeds 3] [--jobs 2] [--out runs/compare_objectives]
        [--table FILE.md] [--plot FILE.png] [--random-init] [--finetune-overrides "KEY=VALUE ..."]
        [OVERRIDE ...]

The budget, the same for every objective:

- ``--budget-flops F``: ``budget.flops=F`` analytic training FLOPs (electra_lit.lit.callbacks.budget:
  the run's step count and LR schedule end there);
- ``--minutes M``: ``trainer.max_time`` of M minutes of wall clock. The LR schedule still ends at
  ``trainer.max_steps``, and runs sharing the machine (``--jobs``) share its cores;
- neither: the FLOPs that the first objective (``electra_tiny``, the quickstart's) spends in its own
  ``trainer.max_steps`` (the quickstart's 1000 steps, unless an OVERRIDE changes them). That run
  goes first, and its total (``perf/flops_total``) becomes ``budget.flops`` of the others.

Each objective is pretrained by ``python -m electra_lit.cli.pretrain`` in ``--out/pretrain/<objective>``
with the OVERRIDEs, then fine-tuned on ``task=austen_novel`` once per seed (1 to ``--seeds``) by
``python -m electra_lit.cli.finetune`` in ``--out/finetune/<objective>/seed<S>`` with the
``--finetune-overrides``. Each command runs in its own process with ``OMP_NUM_THREADS = cores /
jobs``, ``--jobs`` at a time, its output in a ``.log`` beside its folder. ``--random-init`` adds a
baseline pretrained for one step only. Below the table, one line per objective says whether it
beats ``mlm`` by more than the seed spread (the wider min-max range of the two).

Finished work is read, not redone, so an interrupted comparison resumes where it stopped: a
pretraining with its record (``--out/pretrain/<objective>.json``: steps, FLOPs, seconds), a
fine-tuning with its results.json. ``--out/plan.json`` keeps the budget and overrides the folder
was made with; other ones are refused (use another ``--out``). Seconds are the wall clock of the
pretraining command, startup included, on a machine shared by ``--jobs`` runs: compare them within
one invocation only.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from electra_lit.lit.callbacks.throughput import FLOPS_TOTAL
from electra_lit.runs.run_dir import RunDir

# electra_tiny first: the default recipe's objective, and without a given budget the reference whose
# spending in trainer.max_steps becomes every other objective's budget
OBJECTIVES = ("electra_tiny", "electra", "mlm", "electra_15", "all_tokens_mlm")
BASELINE = "mlm"  # the objective the others are judged against, by the seed spread
TASK = "austen_novel"
RANDOM_INIT = "random_init"  # the baseline: pretrained for one step only


@dataclass
class Pretrained:
    """What a finished pretraining spent, as its record keeps it."""

    steps: int
    flops: float
    seconds: float


def known_objectives() -> list[str]:
    """The options of the conf/objective group."""
    folder = resources.files("electra_lit.conf") / "objective"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def max_time(minutes: float) -> str:
    """``trainer.max_time`` for ``minutes``: Lightning's DD:HH:MM:SS."""
    seconds = round(minutes * 60)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days:02d}:{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def flops_budget(flops: float) -> str:
    """The ``budget.flops`` override, exact (the shortest repr that reads back as ``flops``)."""
    return f"budget.flops={flops!r}"


def launch(module: str, arguments: list[str], log: Path, threads: int) -> tuple[bool, float]:
    """``python -m module arguments`` with its output in ``log``: (succeeded, wall seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "disabled"}
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.open("w") as file:
        done = subprocess.run(
            [sys.executable, "-m", module, *arguments], stdout=file, stderr=subprocess.STDOUT, env=env
        )
    if done.returncode:
        print(f"{module}: failed (exit {done.returncode}), see {log}", file=sys.stderr)
    return done.returncode == 0, time.monotonic() - start


def spent(run: RunDir) -> tuple[int, float]:
    """(optimizer steps, training FLOPs) at the end of a run: its last ``perf/flops_total`` row
    (a row of step s holds s + 1 steps; the run logs one at the step it stopped on)."""
    with run.metrics.open() as file:
        rows = [row for row in csv.DictReader(file) if row.get(FLOPS_TOTAL)]
    if not rows:
        raise ValueError(f"{run.metrics} has no {FLOPS_TOTAL} (was the throughput callback removed?)")
    return int(rows[-1]["step"]) + 1, float(rows[-1][FLOPS_TOTAL])


def pretrain(name: str, overrides: list[str], out: Path, threads: int) -> Pretrained | None:
    """Pretrain ``name`` (an objective, or the random-init baseline) unless its record exists."""
    run, record = RunDir(out / "pretrain" / name), out / "pretrain" / f"{name}.json"
    if record.is_file():
        return Pretrained(**json.loads(record.read_text()))
    arguments = [f"run_dir={run}", *overrides]
    ok, seconds = launch("electra_lit.cli.pretrain", arguments, out / "pretrain" / f"{name}.log", threads)
    if not ok or not run.last_checkpoint.is_file():
        return None
    done = Pretrained(*spent(run), seconds)
    record.write_text(json.dumps(asdict(done), indent=2) + "\n")
    return done


def finetune(name: str, seed: int, overrides: list[str], out: Path, threads: int) -> float | None:
    """Fine-tune the pretraining ``name`` on the task with ``seed`` unless its results.json exists;
    its dev accuracy (the task's main metric, at the best epoch)."""
    run, checkpoint = RunDir(out / "finetune" / name / f"seed{seed}"), RunDir(out / "pretrain" / name).last_checkpoint
    if not run.results.is_file():
        arguments = [f"task={TASK}", f"init_from={checkpoint}", f"seed={seed}", f"run_dir={run}", *overrides]
        launch("electra_lit.cli.finetune", arguments, run.root.with_suffix(".log"), threads)
        if not run.results.is_file():
            return None
    results = json.loads(run.results.read_text())
    return results["metrics"][results["metric"]]


def check_plan(out: Path, plan: dict) -> None:
    """Refuse to mix runs of another budget or other overrides into ``out``."""
    path = out / "plan.json"
    made = json.loads(path.read_text()) if path.is_file() else plan
    if made != plan:
        sys.exit(f"{out} holds runs made with {json.dumps(made)}, not {json.dumps(plan)}: use another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan, indent=2) + "\n")


def pretrain_all(names: list[str], common: list[str], budget: list[str], args, threads: int) -> dict:
    """Every pretraining, ``--jobs`` at a time; without a given budget the first of ``names`` goes
    first and its total becomes the others' ``budget.flops``."""
    results: dict[str, Pretrained | None] = {}
    if not budget:
        first = names[0]
        print(f"budget: what objective={first} spends in its trainer.max_steps; pretraining it first", flush=True)
        reference = results[first] = pretrain(first, [*common, f"objective={first}"], args.out, threads)
        if reference is None:
            sys.exit(f"the reference objective={first} failed, so there is no budget: see {args.out}/pretrain")
        print(f"budget: objective={first} spent {reference.flops:.4g} FLOPs in {reference.steps} steps")
        budget = [flops_budget(reference.flops)]
    print(f"budget: {' '.join(budget)} for every objective", flush=True)
    jobs = {name: [*common, f"objective={name}", *budget] for name in names if name not in results}
    if args.random_init:
        jobs[RANDOM_INIT] = [*common, "trainer.max_steps=1"]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(pretrain, name, overrides, args.out, threads) for name, overrides in jobs.items()}
        results |= {name: future.result() for name, future in futures.items()}
    return results


def finetune_all(pretrained: dict, overrides: list[str], args, threads: int) -> dict[str, list[float | None]]:
    """Every (run, seed) fine-tuning, ``--jobs`` at a time: run name -> dev accuracy per seed."""
    names, seeds = [name for name, done in pretrained.items() if done is not None], range(1, args.seeds + 1)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            (name, seed): pool.submit(finetune, name, seed, overrides, args.out, threads)
            for name in names
            for seed in seeds
        }
        return {name: [futures[name, seed].result() for seed in seeds] for name in names}


def markdown(rows: list[str], pretrained: dict, accuracy: dict) -> str:
    lines = [
        "| objective | pretraining steps | pretraining FLOPs | seconds | dev accuracy median | spread min-max | per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in rows:
        done = pretrained.get(name)
        if done is None:
            lines.append(f"| {name} | failed | | | | | |")
            continue
        scores = [a for a in accuracy.get(name, []) if a is not None]
        median = f"{statistics.median(scores):.3f}" if scores else ""
        spread = f"{min(scores):.3f}-{max(scores):.3f}" if scores else ""
        seeds = ", ".join("failed" if a is None else f"{a:.3f}" for a in accuracy.get(name, []))
        lines.append(
            f"| {name} | {done.steps} | {done.flops:.3g} | {done.seconds:.0f} | {median} | {spread} | {seeds} |"
        )
    return "\n".join(lines)


def verdicts(rows: list[str], accuracy: dict, baseline: str = BASELINE) -> list[str]:
    """Each run against ``baseline``: the difference of the median dev accuracies, and whether it is
    larger than the seed spread (the wider of the two min-max ranges)."""
    scores = {name: [a for a in accuracy.get(name, []) if a is not None] for name in rows}
    if not scores.get(baseline):
        return []
    lines = []
    for name in rows:
        if name == baseline or not scores[name]:
            continue
        a, b = scores[name], scores[baseline]
        difference = statistics.median(a) - statistics.median(b)
        spread = max(max(a) - min(a), max(b) - min(b))
        if abs(difference) <= spread:
            word = "within the seed spread of"
        else:
            word = "beats" if difference > 0 else "is beaten by"
        lines.append(f"{name} {word} {baseline}: median {difference:+.3f}, seed spread {spread:.3f}")
    return lines


def plot(rows: list[str], accuracy: dict, path: Path) -> None:
    """The median dev accuracy of each run, with a bar from the worst seed to the best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in rows if any(a is not None for a in accuracy.get(name, []))]
    scores = [[a for a in accuracy[name] if a is not None] for name in names]
    medians = [statistics.median(s) for s in scores]
    spread = [[m - min(s) for m, s in zip(medians, scores)], [max(s) - m for m, s in zip(medians, scores)]]
    figure, axes = plt.subplots(figsize=(1.6 * max(len(names), 3) + 1, 3.5))
    axes.errorbar(range(len(names)), medians, yerr=spread, fmt="o", capsize=4)
    axes.set_xticks(range(len(names)), names)
    axes.set_ylabel(f"{TASK} dev accuracy")
    axes.set_title("median over fine-tuning seeds; bars: min to max", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objectives", default=",".join(OBJECTIVES), help="comma-separated objective= options")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget-flops", type=float, help="training FLOPs per objective (budget.flops)")
    budget.add_argument("--minutes", type=float, help="wall-clock minutes per objective (trainer.max_time)")
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning seeds per objective: 1 to N")
    parser.add_argument("--jobs", type=int, default=2, help="commands at a time; each gets cores / jobs threads")
    parser.add_argument("--out", type=Path, default=Path("runs/compare_objectives"))
    parser.add_argument("--table", type=Path, help="also write the markdown table here")
    parser.add_argument("--plot", type=Path, help="a PNG of the median dev accuracy with min-max bars")
    parser.add_argument("--random-init", action="store_true", help="add a baseline pretrained for one step")
    parser.add_argument("--finetune-overrides", default="", help='electra-finetune overrides, one string: "a=1 b=2"')
    args, overrides = parser.parse_known_args(argv)
    unknown = [o for o in overrides if o.startswith("-")]
    if unknown:
        parser.error(f"unknown options {unknown}; pretraining overrides are KEY=VALUE")
    names = [n for n in args.objectives.split(",") if n]
    wrong = sorted(set(names) - set(known_objectives()))
    if wrong:
        parser.error(f"--objectives: no objective {wrong}; choose from {', '.join(known_objectives())}")
    if args.seeds < 1 or args.jobs < 1:
        parser.error(f"--seeds={args.seeds} and --jobs={args.jobs} must be at least 1")
    if args.budget_flops is not None and not args.budget_flops > 0:
        parser.error(f"--budget-flops={args.budget_flops} must be positive")
    if args.minutes is not None and not args.minutes > 0:
        parser.error(f"--minutes={args.minutes} must be positive")
    args.objectives = names
    return args, overrides


def main(argv: list[str] | None = None) -> int:
    args, extra = parse(argv)
    if args.budget_flops is not None:
        budget = [flops_budget(args.budget_flops)]
    elif args.minutes is not None:
        budget = [f"trainer.max_time={max_time(args.minutes)}"]
    else:
        budget = []  # the reference's spending, measured first
    finetune_extra = shlex.split(args.finetune_overrides)
    check_plan(args.out, {"budget": budget, "pretrain": extra, "finetune": finetune_extra})
    common = ["print_config=false", "logger=csv", *extra]
    finetune_overrides = ["print_config=false", "logger=csv", *finetune_extra]
    threads = max(1, (os.cpu_count() or 1) // args.jobs)

    pretrained = pretrain_all(args.objectives, common, budget, args, threads)
    rows = [*args.objectives, *([RANDOM_INIT] if args.random_init else [])]
    accuracy = finetune_all({name: pretrained.get(name) for name in rows}, finetune_overrides, args, threads)
    table = "\n\n".join(filter(None, [markdown(rows, pretrained, accuracy), "\n".join(verdicts(rows, accuracy))]))
    print(table)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(table + "\n")
    if args.plot:
        plot(rows, accuracy, args.plot)
    complete = all(pretrained.get(n) for n in rows) and all(a is not None for n in rows for a in accuracy.get(n, []))
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
