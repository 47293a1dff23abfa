"""Fine-tuning tasks (GLUE and any task shaped like one) and reading their examples.

A task names its text columns, its label set (``None`` for regression), its metrics and its
splits. Examples come from one of three sources, in this order:
- ``data_dir``: GLUE's own TSV layout (``train.tsv``, ``dev.tsv``, ``test.tsv``; MNLI's
  ``dev_matched.tsv`` ...), read with quoting disabled as GLUE's files need;
- ``files``: local ``.csv``, ``.tsv``, ``.jsonl``/``.json`` or ``.parquet`` files per split;
- the ``datasets`` hub (``nyu-mll/glue`` and the task's config name), cached or online.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from electra_lit.errors import ConfigError

csv.field_size_limit(sys.maxsize)  # GLUE has very long fields (QQP, MNLI parses)


@dataclass
class Example:
    texts: tuple[str, ...]  # one or two segments
    label: int | float | None  # class index, regression target, or None (test split)
    index: str  # the row's id, for GLUE's submission files


@dataclass
class Split:
    """One split of a task in a source: the GLUE file stem, or the hub/file split name."""

    name: str  # e.g. "dev_matched"
    suffix: str = ""  # appended to metric names, e.g. "mm" for MNLI mismatched
    submission: str | None = None  # GLUE submission file stem for a test split, e.g. "MNLI-mm"


@dataclass
class Task:
    name: str
    text_columns: list[str]  # column names in csv/jsonl/parquet files and on the hub
    label_column: str
    labels: list[str] | None  # class names in index order; None = regression
    metric: str  # the main metric: picks the best epoch
    metrics: list[str]
    epochs: int
    average_metric: str | None = None  # what enters the GLUE average; None = metric
    both_orders: bool = False  # train on (a, b) and (b, a) of every pair (the train split only)
    target_scale: float = 1.0  # regression: the model learns label x target_scale
    train: str = "train"
    validation: list[Split] = field(default_factory=lambda: [Split("dev")])
    test: list[Split] = field(default_factory=list)
    # GLUE TSV layout
    tsv_text_columns: list[str] | None = None  # defaults to text_columns
    tsv_label_column: str | None = None  # defaults to label_column
    tsv_columns: list[str] | None = None  # column names of headerless files (CoLA's train/dev)
    tsv_index_column: str = "index"
    # the hub: name of each split there (our split name -> hub split name)
    hub_path: str = "nyu-mll/glue"
    hub_name: str | None = None
    hub_splits: dict[str, str] = field(default_factory=dict)
    # a built-in task whose examples are made here, not read (electra_lit.data.tasks.BUILTIN_SOURCES)
    source: str | None = None

    def __post_init__(self) -> None:
        if self.average_metric is not None and self.average_metric not in self.metrics:
            raise ConfigError(
                f"task.average_metric={self.average_metric} is not among task.metrics={self.metrics}: "
                "add it there, or give null to average task.metric"
            )
        if self.both_orders and len(self.text_columns) != 2:
            raise ConfigError(
                f"task.both_orders=true needs two text columns, task {self.name} has {self.text_columns}: "
                "set task.both_orders=false"
            )
        if not self.target_scale > 0:
            raise ConfigError(f"task.target_scale={self.target_scale} must be positive (1 = the labels as they are)")
        if self.target_scale != 1 and self.labels is not None:
            raise ConfigError(
                f"task.target_scale={self.target_scale} scales regression targets, and task {self.name} "
                "has labels: set task.target_scale=1"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Task:
        values = {k: v for k, v in dict(config).items() if k in cls.__dataclass_fields__}
        for key in ("validation", "test"):
            values[key] = [Split(**s) if isinstance(s, Mapping) else Split(s) for s in values.get(key) or []]
        return cls(**values)

    @property
    def averaged(self) -> str:
        """The metric electra-glue-table averages: ``average_metric``, else the main metric."""
        return self.average_metric or self.metric

    @property
    def num_labels(self) -> int:
        """Outputs of the classifier: the classes, or 1 for regression."""
        return len(self.labels) if self.labels else 1

    def label_index(self, value: Any, where: str) -> int | float:
        """A raw label as a class index (or a float for regression), or a clear error."""
        if self.labels is None:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"{where}: label {value!r} is not a number (task {self.name} is a regression)"
                ) from None
        text = str(value).strip()
        if text in self.labels:  # a class name, as in GLUE's TSV files
            return self.labels.index(text)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(self.labels):
            return value  # a class index, as on the hub (our label lists follow the hub's order)
        raise ConfigError(f"{where}: label {value!r} is not one of task {self.name}'s labels {self.labels}")


def with_both_orders(examples: list[Example]) -> list[Example]:
    """The examples, then each pair again as (b, a): ELECTRA's released ``double_unordered``, for
    tasks whose label does not depend on the order of the two segments (MRPC, STS-B)."""
    return [*examples, *(Example(e.texts[::-1], e.label, e.index) for e in examples)]


# ---------------------------------------------------------------- readers
def _rows_of_tsv(path: Path, names: list[str] | None) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if names is None:
        if not rows:
            raise ConfigError(f"{path}: the file is empty")
        return rows[0], rows[1:]
    return names, rows


def _cell(row: Any, position: dict[str, int] | None, column: str) -> Any:
    """A row's value in ``column``: by name, or by position for a headerless TSV row (a list)."""
    return row[column] if position is None else row[position[column]]


def _examples(
    rows,
    columns: list[str],
    text_columns: list[str],
    label_column: str | None,
    index_column: str | None,
    task: Task,
    source: str,
) -> list[Example]:
    missing = [c for c in [*text_columns, *([label_column] if label_column else [])] if c not in columns]
    if missing:
        raise ConfigError(f"{source}: no column {missing[0]!r}; the columns are: {', '.join(map(str, columns))}")
    position = {c: i for i, c in enumerate(columns)}
    examples = []
    for n, row in enumerate(rows):
        get = partial(_cell, row, position if isinstance(row, list) else None)
        where = f"{source}, row {n + 1}"
        try:
            texts = tuple(str(get(c)) for c in text_columns)
            label = None if label_column is None else task.label_index(get(label_column), where)
            index = str(get(index_column)) if index_column in position else str(n)
        except IndexError:
            raise ConfigError(f"{where}: has {len(row)} fields, fewer than the header's {len(columns)}") from None
        examples.append(Example(texts, label, index))
    if not examples:
        raise ConfigError(f"{source}: the split is empty")
    return examples


def read_glue_tsv(task: Task, data_dir: str | Path, split: str, labelled: bool) -> list[Example]:
    """One split from GLUE's TSV files (quoting disabled; CoLA's train/dev have no header)."""
    path = split_file(task, split, data_dir, files=None)
    headerless = task.tsv_columns if (split != "test" and not split.startswith("test")) else None
    columns, rows = _rows_of_tsv(path, headerless)
    text_columns = task.tsv_text_columns or task.text_columns
    label_column = (task.tsv_label_column or task.label_column) if labelled else None
    index_column = task.tsv_index_column if task.tsv_index_column in columns else ("id" if "id" in columns else None)
    return _examples(rows, columns, text_columns, label_column, index_column, task, str(path))


def read_file(task: Task, path: Path, labelled: bool) -> list[Example]:
    """One split from a local .csv, .tsv, .jsonl/.json or .parquet file (one :func:`split_file`
    found), via ``datasets``."""
    builder = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(path.suffix)
    if builder is None:
        raise ConfigError(f"task.files: {path} is not .csv, .tsv, .jsonl, .json or .parquet")
    import datasets

    options = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
    table = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
    label_column = task.label_column if labelled else None
    return _examples(table, list(table.column_names), task.text_columns, label_column, "idx", task, str(path))


def read_hub(task: Task, split: str, labelled: bool) -> list[Example]:
    """One split from the ``datasets`` hub (``task.hub_path``, ``task.hub_name``)."""
    import datasets

    hub_split = task.hub_splits.get(split, split)
    try:
        table = datasets.load_dataset(task.hub_path, task.hub_name, split=hub_split)
    except Exception as err:  # offline, not cached, no such split
        raise ConfigError(
            f"task {task.name}: {task.hub_path}/{task.hub_name} split {hub_split} could not be loaded ({type(err).__name__}); "
            "give glue_dir=DIR (GLUE's download), task.data_dir=DIR (this task's TSV files) or task.files={train: ..., dev: ...}"
        ) from None
    label_column = task.label_column if labelled else None
    return _examples(
        table,
        list(table.column_names),
        task.text_columns,
        label_column,
        "idx",
        task,
        f"{task.hub_path}/{task.hub_name}:{hub_split}",
    )


def read_split(
    task: Task, split: str, labelled: bool, data_dir: str | None = None, files: Mapping[str, str] | None = None
) -> list[Example]:
    """The examples of ``split`` from the first source given: data_dir, files, task.source, or the hub."""
    if data_dir:
        return read_glue_tsv(task, data_dir, split, labelled)
    if files:
        return read_file(task, split_file(task, split, None, files), labelled)
    if task.source:
        from electra_lit.data.tasks import read_builtin  # the package imports this module first

        return read_builtin(task, split, labelled)
    return read_hub(task, split, labelled)


def split_file(task: Task, split: str, data_dir: str | Path | None, files: Mapping[str, str] | None) -> Path | None:
    """The local file ``split`` is read from (None: the hub); refuses one that does not exist.
    A ``-m`` sweep calls this for every job before the first one trains."""
    if data_dir:
        path = Path(data_dir).expanduser() / f"{split}.tsv"
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; glue_dir or task.data_dir must hold GLUE's {task.name} files")
        return path
    if files:
        if split not in files:
            raise ConfigError(f"task.files has no {split!r} entry; it has: {', '.join(files)}")
        path = Path(files[split]).expanduser()
        if not path.is_file():
            raise ConfigError(f"task.files: {path} does not exist")
        return path
    return None


def available_splits(names: Sequence[Split], data_dir: str | None, files: Mapping[str, str] | None) -> list[Split]:
    """The test splits that exist in the source (test files are optional)."""
    if data_dir:
        return [s for s in names if (Path(data_dir).expanduser() / f"{s.name}.tsv").is_file()]
    if files:
        return [s for s in names if s.name in files]
    return list(names)
