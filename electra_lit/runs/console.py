"""What a run prints at its start: the resolved config as a tree, one branch per top-level key;
and what it does not print: Lightning's advertising tips."""

from __future__ import annotations

import logging

from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.tree import Tree

# Shown first, in this order: what a reader of a run wants to know first.
FIRST = ("run_dir", "model", "objective", "masking", "data", "tokenizer", "task", "optimizer", "lr_schedule", "trainer")


def config_tree(cfg: DictConfig) -> Tree:
    """A rich tree of the resolved config: mappings as YAML under their key, values inline."""
    tree = Tree("[bold]config[/bold]", guide_style="dim")
    keys = [k for k in FIRST if k in cfg] + [k for k in cfg if k not in FIRST]
    for key in keys:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, DictConfig):
            yaml = OmegaConf.to_yaml(value, resolve=True).rstrip() or "{}"
            tree.add(f"[bold]{key}[/bold]").add(Syntax(yaml, "yaml", background_color="default", word_wrap=True))
        else:
            tree.add(f"[bold]{key}[/bold]: {value}")
    return tree


LOG_WIDTH = 160  # columns when the output is a file (a SLURM log, a pipe) and not a terminal


@rank_zero_only
def print_config_tree(cfg: DictConfig) -> None:
    """Print the tree; long values (run folders named after their overrides) wrap, never crop."""
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, LOG_WIDTH)
    console.print(config_tree(cfg))


class _NoTips(logging.Filter):
    """Drops Lightning's "💡 Tip" lines (ads for its cloud services) from a run's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


def hide_lightning_tips() -> None:
    rank_zero_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoTips) for f in rank_zero_log.filters):
        rank_zero_log.addFilter(_NoTips())
