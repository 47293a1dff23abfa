"""The paper's GLUE dev table from fine-tuning results (what ``electra-glue-table DIR...`` prints).

Finds every ``results.json`` under the given folders (a multirun's, say), groups them by
pretrained model (``init_from``) and task, takes the median over seeds (x100) of each task's
averaged metric (``task.average_metric``, else its main metric) and averages the tasks as the
paper does: WNLI left out, MNLI by its matched accuracy, MRPC and QQP by accuracy. Where the main
metric differs (MRPC's and QQP's F1), the cell shows its median too, in brackets. Prints a
markdown table; ``--csv PATH`` also writes every run as CSV.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from electra_lit.runs.run_dir import RunDir

TASKS = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")
HEADERS = {
    "cola": "CoLA",
    "sst2": "SST-2",
    "mrpc": "MRPC",
    "stsb": "STS-B",
    "qqp": "QQP",
    "mnli": "MNLI",
    "qnli": "QNLI",
    "rte": "RTE",
    "wnli": "WNLI",
}
NOT_AVERAGED = {"wnli"}
METRIC_NAMES = {"accuracy": "acc", "f1": "F1", "mcc": "MCC", "spearman": "Spearman", "pearson": "Pearson"}


def collect(folders: Iterable[str | Path]) -> list[dict]:
    results = []
    for folder in folders:
        folder = Path(folder)
        paths = [folder] if folder.is_file() else sorted(folder.rglob(RunDir(folder).results.name))
        results += [json.loads(path.read_text()) | {"path": str(path)} for path in paths]
    return results


def averaged_metric(result: dict) -> str:
    """The metric a run enters the GLUE average with; results.json files written before
    ``task.average_metric`` existed have none, and enter with their main metric."""
    return result.get("average_metric") or result["metric"]


def main_metric(result: dict) -> str:
    return result["metric"]


def medians(results: list[dict], metric_of=averaged_metric) -> dict[str, dict[str, float]]:
    """model -> task -> median over seeds of each run's ``metric_of(run)``, x100."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        scores[r["init_from"]][r["task"]].append(100 * r["metrics"][metric_of(r)])
    return {
        model: {task: statistics.median(values) for task, values in tasks.items()} for model, tasks in scores.items()
    }


def glue_average(task_scores: dict[str, float]) -> float | None:
    averaged = [score for task, score in task_scores.items() if task not in NOT_AVERAGED]
    return sum(averaged) / len(averaged) if averaged else None


def also_shown(results: list[dict]) -> dict[tuple[str, str], tuple[str, str]]:
    """(model, task) -> (averaged metric, main metric) for the cells averaged by another metric
    than their main one (MRPC and QQP: accuracy, F1): those cells show both."""
    return {
        (r["init_from"], r["task"]): (averaged_metric(r), main_metric(r))
        for r in results
        if averaged_metric(r) != main_metric(r)
    }


def metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def cell(averaged: float | None, main: float | None, main_name: str | None) -> str:
    """A table cell: the averaged metric's median, and the main metric's (``main_name``) in
    brackets when the two differ."""
    if averaged is None:
        return "-"
    return f"{averaged:.1f}" if main_name is None else f"{averaged:.1f} ({metric_name(main_name)} {main:.1f})"


def markdown(results: list[dict]) -> str:
    table, main = medians(results), medians(results, main_metric)
    both = also_shown(results)
    tasks = [t for t in TASKS if any(t in scores for scores in table.values())]
    tasks += sorted({t for scores in table.values() for t in scores} - set(TASKS))
    seeds = {(r["init_from"], r["task"]) for r in results}
    lines = [
        "| model | " + " | ".join(HEADERS.get(t, t) for t in tasks) + " | GLUE avg |",
        "|---" * (len(tasks) + 2) + "|",
    ]
    for model, scores in table.items():
        average = glue_average(scores)
        cells = [cell(scores.get(t), main[model].get(t), both.get((model, t), (None, None))[1]) for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {'-' if average is None else f'{average:.1f}'} |")
    by_task = {t: metrics for (_, t), metrics in both.items()}
    notes = [
        f"; {HEADERS.get(t, t)} by {metric_name(by_task[t][0])} ({metric_name(by_task[t][1])} in brackets)"
        for t in tasks
        if t in by_task
    ]
    lines.append("")
    lines.append(
        f"{len(results)} runs, {len(seeds)} model x task cells; median over seeds; average without WNLI{''.join(notes)}."
    )
    return "\n".join(lines)


def write_csv(results: list[dict], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["model", "task", "seed", "metric", "value", "average_metric", "average_value", "best_epoch", "results"]
        )
        for r in results:
            writer.writerow(
                [
                    r["init_from"],
                    r["task"],
                    r.get("seed"),
                    r["metric"],
                    r["metrics"][r["metric"]],
                    averaged_metric(r),
                    r["metrics"][averaged_metric(r)],
                    r.get("best_epoch"),
                    r["path"],
                ]
            )
