"""What a run prints at its start: the resolved config as a tree, one branch per top-level key;
what it prints and also logs to its log file (the closing summary); and what it does not print:
Lightning's advertising tips."""

from __future__ import annotations

import logging
import re
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

# Shown first, in this order: what a reader of a run wants to know first.
FIRST = ("run_dir", "model", "objective", "masking", "data", "tokenizer", "task", "optimizer", "lr_schedule", "trainer")


def config_tree(cfg: DictConfig) -> Tree:
    """A rich tree of the resolved config: mappings as YAML under their key, values inline. A value
    that only repeats another key (``${run_dir}``, ``${data.corpus}``) shows as that reference, so
    each setting appears once."""
    tree = Tree("[bold]config[/bold]", guide_style="dim")
    keys = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST]
    for key in keys:
        value = OmegaConf.select(cfg, key)
        if key == "local_run_dir" and value == cfg.get("run_dir"):
            continue  # derived: worth showing only as a URL run_dir's local mirror
        if isinstance(value, DictConfig):
            shown = OmegaConf.create(shown_once(value))
            yaml = OmegaConf.to_yaml(shown, resolve=False).rstrip() or "{}"
            tree.add(f"[bold]{key}[/bold]").add(Syntax(yaml, "yaml", background_color="default", word_wrap=True))
        else:
            tree.add(f"[bold]{key}[/bold]: {value}")
    return tree


_REFERENCE = re.compile(r"^\$\{[A-Za-z_][\w.]*\}$")  # ${key.path}: another key's value, no resolver


def shown_once(node: DictConfig | ListConfig) -> Any:
    """``node`` as plain containers, resolved, except values that are a reference to another key,
    left as the reference."""
    raw, resolved = OmegaConf.to_container(node, resolve=False), OmegaConf.to_container(node, resolve=True)
    return _keep_references(raw, resolved)


def _keep_references(raw: Any, resolved: Any) -> Any:
    if isinstance(raw, str) and _REFERENCE.match(raw):
        return raw
    if isinstance(raw, dict) and isinstance(resolved, dict):
        return {key: _keep_references(raw[key], resolved[key]) for key in raw}
    if isinstance(raw, list) and isinstance(resolved, list):
        return [_keep_references(r, v) for r, v in zip(raw, resolved, strict=True)]
    return resolved


LOG_WIDTH = 160  # columns when the output is a file (a SLURM log, a pipe) and not a terminal


@rank_zero_only
def print_config_tree(cfg: DictConfig) -> None:
    """Print the tree; long values (run folders named after their overrides) wrap, never crop."""
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, LOG_WIDTH)
    console.print(config_tree(cfg))


def print_and_log(text: str) -> None:
    """Print ``text`` as it is, and write it to the run's log files too (Hydra's train.log in the
    run folder), which otherwise get only what goes through ``logging``."""
    print(text, flush=True)
    record = logging.makeLogRecord(
        {"name": __name__, "levelno": logging.INFO, "levelname": "INFO", "msg": text.strip("\n"), "args": None}
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


class _NoTips(logging.Filter):
    """Drops Lightning's "💡 Tip" lines (ads for its cloud services) from a run's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


def hide_lightning_tips() -> None:
    rank_zero_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoTips) for f in rank_zero_log.filters):
        rank_zero_log.addFilter(_NoTips())
