"""The closing lines of a run: where the losses ended, where the checkpoint is, how to go on."""

from __future__ import annotations

import shlex
from pathlib import Path

import lightning as L

from electra_lit import storage
from electra_lit.lit.callbacks.budget import spent_budget
from electra_lit.runs.run_dir import RunDir

_LOSSES = (("gen_loss", "generator"), ("disc_loss", "discriminator"), ("mlm_loss", "MLM"))


def override(key: str, value: object) -> str:
    """``key=value`` as a shell argument holding a Hydra override: quoted when the value has
    characters of Hydra's grammar, as run folders named after their overrides do (a=1,b=2)."""
    text = str(value)
    if not any(c in text for c in "=,[]{}()'\" \\$`"):
        return f"{key}={text}"
    argument = f"{key}='{text}'" if "'" not in text else f'{key}="{text}"'  # quoted for Hydra
    if any(c in argument for c in '"$`\\'):
        return shlex.quote(argument)  # and for the shell
    return f'"{argument}"'  # the readable form, for the usual a=1,b=2


def summary_lines(trainer: L.Trainer, run_dir: str | Path, remote: str | None = None) -> list[str]:
    """Final losses, accuracies, the discriminator's AUC and gain (train and val), the checkpoint and
    metrics paths: those of ``remote`` (the URL of a remote run folder whose mirror is ``run_dir``) if given."""
    run = RunDir(run_dir)
    shown = (lambda path: storage.join(remote, path.relative_to(run.root).as_posix())) if remote else str
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    lines = ["", f"Pretraining stopped at step {trainer.global_step} of {trainer.max_steps}."]
    stopped_by = getattr(trainer.checkpoint_callback, "stopped_by", None)
    if stopped_by:
        lines[-1] = lines[-1][:-1] + f", by {stopped_by}; the checkpoint holds that step."
    for stage in ("train", "val"):
        m = {key.split("/", 1)[1]: value for key, value in metrics.items() if key.startswith(f"{stage}/")}
        if "loss" not in m:
            continue
        parts = ", ".join(f"{name} {m[key]:.4f}" for key, name in _LOSSES if key in m)
        line = f"  {stage:<5} loss {m['loss']:.4f} ({parts})"
        line += "".join(f"  {key} {m[key]:.3f}" for key in ("gen_acc", "mlm_acc", "disc_auc", "disc_gain") if key in m)
        if "disc_acc" in m and "replaced_frac" in m:
            line += f"  disc_acc {m['disc_acc']:.3f} (all-original {1 - m['replaced_frac']:.3f})"
        lines.append(line)
    last = run.last_checkpoint
    lines.append(f"  checkpoint  {shown(last) if last.exists() else '(none written)'}")
    if run.metrics.exists():
        lines.append(f"  metrics     {shown(run.metrics)}")
    budget = spent_budget(trainer)
    if budget:  # the same command would stop again at once: its budget is the run's length
        lines.append(
            f"  longer      {budget} is spent; a larger one with {override('run_dir', remote or run.root)} trains on"
        )
    elif trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
        lines.append(
            f"  longer      the run is complete; trainer.max_steps=N {override('run_dir', remote or run.root)} trains on to step N"
        )
    else:
        lines.append("  resume      run the same command again: it continues from the checkpoint")
    if last.exists():
        lines.append(
            f"  export      electra-export {shlex.quote(shown(last))} {shlex.quote(shown(run.exported))}"
            "   (Hugging Face transformers folders)"
        )
    return lines
