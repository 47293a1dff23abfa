"""Loss, accuracy and throughput curves of one or more runs, side by side, as PNG files.

    python scripts/plot_runs.py RUN_DIR [RUN_DIR ...] [--out plots/] [--metrics train/loss val/disc_auc ...]
                                [--labels a b ...] [--smooth 0.9]

Each RUN_DIR is a run folder with a metrics.csv (or the metrics.csv itself), e.g. the jobs of
``electra-pretrain -m masking.mask_prob=0.15,0.25``. Writes one PNG per metric group that some run
has: losses.png, accuracies.png, throughput.png (and other.png for other metrics named with
--metrics, such as train/lr). A group's panels are a grid, a row per prefix (train/, val/) and a
column per metric, and each run is one line of the same colour in every panel, labelled with its
folder's name (which is its overrides: masking.mask_prob=0.25) or --labels. Discriminator
accuracy panels also show each run's all-original baseline (1 - replaced_frac), dashed: the
accuracy of answering "original" everywhere, which the discriminator has to beat.

Needs matplotlib (``pip install matplotlib``, or the ``notebooks`` extra).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

GROUPS = ("losses", "detection", "accuracies", "throughput", "other")
DEFAULT_GROUPS = ("losses", "detection", "accuracies", "throughput")
# The discriminator's replaced-token detection (electra_lit.lit.modules.metrics), each with the value
# of a detector that knows nothing (drawn dashed): AUC 0.5, gain 0 (the constant prior's loss).
DETECTION = {"disc_auc": 0.5, "disc_gain": 0.0, "disc_precision": None, "disc_recall": None, "disc_f1": None}
NOT_METRICS = {"step", "epoch"}
SPARSE = 20  # series of at most this many points (validations) are drawn with markers and never smoothed
# Column order of a group's grid; metrics not listed follow in name order.
LEAF_ORDER = [
    "loss",
    "gen_loss",
    "disc_loss",
    "mlm_loss",
    "disc_auc",
    "disc_gain",
    "disc_f1",
    "disc_precision",
    "disc_recall",
    "gen_acc",
    "disc_acc",
    "accuracy",
    "tokens_per_s",
    "samples_per_s",
    "items_per_sec",
    "samples_per_sec",
    "flops_per_sec",
    "mfu",
]


class PlotError(Exception):
    """A problem with the command's input, reported as one line that names the path or metric."""


@dataclass
class Run:
    path: Path  # the metrics.csv
    label: str
    series: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)  # metric -> (steps, values)


def metric_group(name: str) -> str:
    """Which PNG a metric goes to, from its name (train/gen_loss -> losses)."""
    prefix, _, leaf = name.rpartition("/")
    # perf/tokens_per_s: older runs; train/device/items_per_sec, .../mfu: Lightning's ThroughputMonitor
    if prefix == "perf" or leaf.endswith(("_per_s", "_per_sec")) or leaf == "mfu" or "throughput" in leaf:
        return "throughput"
    if leaf == "loss" or leaf.endswith("_loss"):
        return "losses"
    if leaf in DETECTION:
        return "detection"
    if leaf in ("acc", "accuracy") or leaf.endswith("_acc") or leaf.startswith("accuracy"):
        return "accuracies"
    return "other"


def metrics_file(run: Path) -> Path:
    """The metrics.csv of a run folder, or a clear error naming the path (and, for a sweep's
    folder, the runs inside it)."""
    if run.is_file():
        return run
    path = run / "metrics.csv"
    if path.is_file():
        return path
    if not run.exists():
        raise PlotError(f"{run}: no such run folder")
    inside = sorted(p.parent.name for p in run.glob("*/metrics.csv"))
    hint = f"; its subfolders {', '.join(inside)} have one: pass them ({run}/*)" if inside else ""
    raise PlotError(f"{path}: no such file, so {run} is not a run folder{hint}")


def read_metrics(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Every metric column of a metrics.csv as (steps, values), skipping the rows that do not log it
    (Lightning writes validation rows apart from training rows)."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if not reader.fieldnames or "step" not in reader.fieldnames:
            raise PlotError(f"{path}: no 'step' column; is it a Lightning metrics.csv?")
        names = [name for name in reader.fieldnames if name not in NOT_METRICS]
        points: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        for row in reader:
            try:
                step = float(row["step"])
            except (TypeError, ValueError):
                continue
            for name in points:
                value = row.get(name)
                if value not in (None, ""):
                    points[name].append((step, float(value)))
    series = {}
    for name, pairs in points.items():
        if pairs:
            pairs.sort(key=lambda pair: pair[0])  # stable: rows of one step keep their order
            series[name] = ([s for s, _ in pairs], [v for _, v in pairs])
    return series


def run_labels(paths: list[Path]) -> list[str]:
    """A run folder's name (its overrides), with as many parent folders as make the labels unique."""
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def load_runs(dirs: list[Path], labels: list[str] | None) -> list[Run]:
    if labels is not None and len(labels) != len(dirs):
        raise PlotError(f"--labels has {len(labels)} labels for {len(dirs)} runs; give one per run")
    files = [metrics_file(d) for d in dirs]
    folders = [f.parent.resolve() if d.is_file() else d.resolve() for d, f in zip(dirs, files)]
    labels = labels or run_labels(folders)
    return [Run(f, label, read_metrics(f)) for f, label in zip(files, labels)]


def choose_metrics(runs: list[Run], wanted: list[str] | None) -> dict[str, list[str]]:
    """The metrics to plot, by group: the ones asked for (each must exist in some run), or
    everything of the default groups that any run has."""
    available = sorted({name for run in runs for name in run.series})
    if wanted:
        unknown = [name for name in wanted if name not in available]
        if unknown:
            files = ", ".join(str(run.path) for run in runs)
            raise PlotError(f"no run has metric {unknown[0]!r} (in {files}); the metrics are: {', '.join(available)}")
        chosen = list(dict.fromkeys(wanted))
    else:
        chosen = [name for name in available if metric_group(name) in DEFAULT_GROUPS]
        if not chosen:
            raise PlotError(
                f"nothing to plot: the runs have no loss, accuracy or throughput metric; "
                f"the metrics are: {', '.join(available) or 'none'}"
            )
    groups: dict[str, list[str]] = {}
    for name in chosen:
        groups.setdefault(metric_group(name), []).append(name)
    return {group: groups[group] for group in GROUPS if group in groups}


def _grid(metrics: list[str]) -> tuple[list[str], list[str]]:
    """Rows (prefixes: train, val, others) and columns (metric names) of a group's panels."""
    prefixes = list(dict.fromkeys(name.rpartition("/")[0] for name in metrics))
    prefixes.sort(key=lambda p: ({"train": 0, "val": 1}.get(p, 2), p))
    leaves = list(dict.fromkeys(name.rpartition("/")[2] for name in metrics))
    leaves.sort(key=lambda leaf: (LEAF_ORDER.index(leaf) if leaf in LEAF_ORDER else len(LEAF_ORDER), leaf))
    return prefixes, leaves


def smoothed(values: list[float], weight: float) -> list[float]:
    """Exponential moving average (TensorBoard's smoothing), debiased so the start is not pulled to 0."""
    if weight <= 0:
        return values
    out, average = [], 0.0
    for n, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**n))
    return out


def plot_group(runs: list[Run], group: str, metrics: list[str], out: Path, smooth: float) -> Path:
    import matplotlib.pyplot as plt

    prefixes, leaves = _grid(metrics)
    fig, axes = plt.subplots(
        len(prefixes),
        len(leaves),
        figsize=(4.6 * len(leaves), 3.3 * len(prefixes)),
        squeeze=False,
        layout="constrained",
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, prefix in enumerate(prefixes):
        for col, leaf in enumerate(leaves):
            ax, name = axes[row][col], f"{prefix}/{leaf}" if prefix else leaf
            if name not in metrics:
                ax.set_visible(False)
                continue
            baseline = f"{prefix}/replaced_frac" if prefix else "replaced_frac"
            show_baseline = leaf == "disc_acc"
            for n, run in enumerate(runs):
                color = colors[n % len(colors)]
                if name in run.series:
                    steps, values = run.series[name]
                    sparse = len(steps) <= SPARSE
                    ax.plot(
                        steps,
                        values if sparse else smoothed(values, smooth),
                        color=color,
                        linewidth=1.4,
                        marker="o" if sparse else None,
                        markersize=3,
                    )
                if show_baseline and baseline in run.series:
                    steps, replaced = run.series[baseline]
                    values = [1 - r for r in replaced]
                    ax.plot(
                        steps,
                        values if len(steps) <= SPARSE else smoothed(values, smooth),
                        color=color,
                        linestyle="--",
                        linewidth=0.9,
                        alpha=0.7,
                    )
            chance = DETECTION.get(leaf)
            if chance is not None:
                ax.axhline(chance, color="k", linestyle="--", linewidth=0.9, alpha=0.7)
            title = name + ("\n(dashed: all-original baseline)" if show_baseline else "")
            title += "\n(dashed: a detector that knows nothing)" if chance is not None else ""
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            if group == "losses" and _spans_decades(runs, name):
                ax.set_yscale("log")
    handles = [plt.Line2D([], [], color=colors[n % len(colors)], linewidth=2) for n in range(len(runs))]
    fig.legend(
        handles,
        [run.label for run in runs],
        loc="outside lower center",
        ncol=min(len(runs), 3),
        fontsize=9,
        frameon=False,
    )
    fig.suptitle(group + (f" (smoothed {smooth:g})" if smooth > 0 else ""))
    path = out / f"{group}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _spans_decades(runs: list[Run], name: str) -> bool:
    """Whether a positive metric falls by more than 10x: shown on a log scale."""
    values = [v for run in runs if name in run.series for v in run.series[name][1] if math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders (or their metrics.csv)")
    parser.add_argument("--out", type=Path, default=Path("plots"), help="folder for the PNG files (default: plots)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="NAME",
        help="only these metrics, e.g. train/loss val/disc_auc train/lr (default: every loss, "
        "detection, accuracy and throughput metric)",
    )
    parser.add_argument("--labels", nargs="+", metavar="LABEL", help="one legend label per run (default: folder names)")
    parser.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="W",
        help="exponential moving average weight in [0, 1), as in TensorBoard, for series of more "
        f"than {SPARSE} points (default: 0, none)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.smooth < 1:
        parser.error(f"--smooth {args.smooth:g} must be in [0, 1)")
    try:
        runs = load_runs(args.runs, args.labels)
        groups = choose_metrics(runs, args.metrics)
    except PlotError as err:
        parser.error(str(err))
    try:
        import matplotlib
    except ImportError:
        parser.error("needs matplotlib: pip install matplotlib (or pip install -e '.[notebooks]')")
    matplotlib.use("Agg")  # files only, no display needed
    args.out.mkdir(parents=True, exist_ok=True)
    for group, metrics in groups.items():
        path = plot_group(runs, group, metrics, args.out, args.smooth)
        print(f"{path}: {', '.join(metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
