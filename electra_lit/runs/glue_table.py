"""The paper's GLUE dev table from fine-tuning results (what ``electra-glue-table DIR...`` prints).

Finds every ``results.json`` under the given folders (a multirun's, say), groups them by
pretrained model (``init_from``) and task, takes the median over seeds of each task's main
metric (x100), and averages the tasks as the paper does: WNLI left out, MNLI by its matched
accuracy. Prints a markdown table; ``--csv PATH`` also writes every run as CSV.
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


def collect(folders: Iterable[str | Path]) -> list[dict]:
    results = []
    for folder in folders:
        folder = Path(folder)
        paths = [folder] if folder.is_file() else sorted(folder.rglob(RunDir(folder).results.name))
        results += [json.loads(path.read_text()) | {"path": str(path)} for path in paths]
    return results


def medians(results: list[dict]) -> dict[str, dict[str, float]]:
    """model -> task -> median over seeds of the main metric, x100."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        scores[r["init_from"]][r["task"]].append(100 * r["metrics"][r["metric"]])
    return {
        model: {task: statistics.median(values) for task, values in tasks.items()} for model, tasks in scores.items()
    }


def glue_average(task_scores: dict[str, float]) -> float | None:
    averaged = [score for task, score in task_scores.items() if task not in NOT_AVERAGED]
    return sum(averaged) / len(averaged) if averaged else None


def markdown(results: list[dict]) -> str:
    table = medians(results)
    tasks = [t for t in TASKS if any(t in scores for scores in table.values())]
    tasks += sorted({t for scores in table.values() for t in scores} - set(TASKS))
    seeds = {(r["init_from"], r["task"]) for r in results}
    lines = [
        "| model | " + " | ".join(HEADERS.get(t, t) for t in tasks) + " | GLUE avg |",
        "|---" * (len(tasks) + 2) + "|",
    ]
    for model, scores in table.items():
        average = glue_average(scores)
        cells = [f"{scores[t]:.1f}" if t in scores else "-" for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {'-' if average is None else f'{average:.1f}'} |")
    runs = len(results)
    lines.append("")
    lines.append(f"{runs} runs, {len(seeds)} model x task cells; median over seeds; average without WNLI.")
    return "\n".join(lines)


def write_csv(results: list[dict], path: str | Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "task", "seed", "metric", "value", "best_epoch", "results"])
        for r in results:
            writer.writerow(
                [
                    r["init_from"],
                    r["task"],
                    r.get("seed"),
                    r["metric"],
                    r["metrics"][r["metric"]],
                    r.get("best_epoch"),
                    r["path"],
                ]
            )
