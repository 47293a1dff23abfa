"""Which checkpoint a run resumes from, and whether it fits the configured run.

Re-running a command resumes from the newest readable checkpoint of its run folder
(:meth:`RunDir.resume_candidates`): ``last.ckpt``, the ``hpc_ckpt_N.ckpt`` that Lightning's SLURM
requeue writes, or ``last.previous.ckpt`` (the one ``last.ckpt`` replaced) when the newer ones are
unreadable. ``ckpt_path`` starts a run folder that has no checkpoint yet from another run's.
A checkpoint of another model size or tokenizer is refused with the difference named.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tokenizers import Tokenizer

from electra_lit import storage
from electra_lit.errors import ConfigError
from electra_lit.runs.run_dir import RunDir

log = logging.getLogger(__name__)


class UnreadableCheckpoint(Exception):
    pass


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents (tensors memory-mapped, not read); a folder (DeepSpeed) as {}."""
    if path.is_dir():
        return {}
    try:
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as err:  # truncated zip, not a checkpoint at all, ...
        raise UnreadableCheckpoint(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "global_step" not in checkpoint:
        raise UnreadableCheckpoint("not a Lightning checkpoint (no state_dict or global_step)")
    return checkpoint


def check_ckpt_path(ckpt_path: str, cache_dir: str) -> Path:
    """``ckpt_path`` as a local path that exists: a .ckpt file (or a DeepSpeed checkpoint folder);
    a URL is fetched into ``cache_dir`` first."""
    path = storage.fetch(ckpt_path, cache_dir, "ckpt_path")
    if not path.exists():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: no such file; give an existing .ckpt, or ckpt_path=null to start a new run"
        )
    return path


def _differences(saved: Any, configured: Any, key: str) -> list[str]:
    if isinstance(saved, dict) and isinstance(configured, dict):
        return [
            d
            for k in sorted(set(saved) | set(configured))
            for d in _differences(saved.get(k), configured.get(k), f"{key}.{k}")
        ]
    return [] if saved == configured else [f"{key}={saved} in the checkpoint, {configured} here"]


def _with_defaults(saved: Any, configured: DictConfig) -> Any:
    """A checkpoint's model settings completed with the schema's defaults: a checkpoint written
    before a key was in the config recorded only the keys its config file set."""
    try:
        return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(OmegaConf.get_type(configured)), saved))
    except Exception:  # not a schema-typed config, or settings the schema does not know: compare as saved
        return saved


def runs_own_tokenizer(checkpoint: dict[str, Any], path: Path, cfg: DictConfig, configured: Tokenizer) -> Tokenizer:
    """The tokenizer a resumed run continues with: the one in its checkpoint when the run that wrote
    it was configured with the same tokenizer settings (its config.yaml), else ``configured``.

    Training a WordPiece vocab is not repeatable: the trainer breaks ties between equally frequent
    merges differently in each process, so a run resumed on another machine or with another
    ``cache_dir`` (a remote run folder's new mirror) would train a vocab a few tokens different
    from the one its weights learned."""
    saved = checkpoint.get("tokenizer_json")
    if saved is None or saved == configured.to_str():
        return configured
    try:
        saved_settings = OmegaConf.load(RunDir(path.parent.parent).config).get("tokenizer")
    except Exception:  # no config.yaml beside the checkpoint: check_fits decides
        return configured
    if saved_settings is None or _tokenizer_settings(saved_settings) != _tokenizer_settings(cfg.tokenizer):
        return configured
    log.info("Resuming with the tokenizer %s was trained with", path)
    return Tokenizer.from_str(saved)


def _tokenizer_settings(node: DictConfig) -> Any:
    """What decides a tokenizer's vocab (not where it is cached)."""

    def without_cache(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: without_cache(v) for k, v in value.items() if k != "cache_dir"}
        return value

    return without_cache(OmegaConf.to_container(node, resolve=True))


def check_fits(checkpoint: dict[str, Any], path: Path, cfg: DictConfig, tokenizer: Tokenizer) -> None:
    """Refuse a checkpoint trained with other model sizes or another tokenizer, naming the difference."""
    hparams = checkpoint.get("hyper_parameters", {})
    if "model" in hparams:
        differences = _differences(
            _with_defaults(hparams["model"], cfg.model), OmegaConf.to_container(cfg.model, resolve=True), "model"
        )
        if differences:
            raise ConfigError(
                f"{path} does not fit this config: {'; '.join(differences[:4])}; resume with the run's "
                "own model=... settings, or start a new run (another run_dir)"
            )
    saved_tokenizer = checkpoint.get("tokenizer_json")
    if saved_tokenizer is not None and saved_tokenizer != tokenizer.to_str():
        saved_size = Tokenizer.from_str(saved_tokenizer).get_vocab_size()
        raise ConfigError(
            f"{path} was trained with another tokenizer (vocab {saved_size}, this config's: "
            f"{tokenizer.get_vocab_size()}); resume with it: tokenizer=pretrained "
            f"tokenizer.path={RunDir(cfg.local_run_dir).tokenizer}"
        )


def resume_checkpoint(cfg: DictConfig) -> tuple[Path, dict[str, Any]] | tuple[None, None]:
    """The checkpoint a run continues from, with its contents for :func:`check_fits`; (None, None)
    for a fresh start.

    The run folder's own newest readable checkpoint comes first, so that a re-run or a requeued job
    never goes back. ``cfg.ckpt_path`` is where a new run folder starts from (a branch off another
    run, or a checkpoint copied from elsewhere): it is used only while ``run_dir`` has no checkpoint."""
    own, unreadable = _newest_readable(RunDir(cfg.local_run_dir))
    if own is not None:
        path, checkpoint = own
        if cfg.ckpt_path:
            log.info(
                "%s has checkpoints of its own (step %s): continuing from %s; ckpt_path=%s only starts "
                "a run folder without any",
                cfg.run_dir,
                checkpoint.get("global_step"),
                path,
                cfg.ckpt_path,
            )
        elif unreadable:
            log.warning("Resuming from %s (step %s) instead", path, checkpoint.get("global_step"))
        return path, checkpoint

    if cfg.ckpt_path:
        path = check_ckpt_path(cfg.ckpt_path, cfg.cache_dir)
        try:
            checkpoint = read_checkpoint(path)
        except UnreadableCheckpoint as err:
            raise ConfigError(
                f"ckpt_path={cfg.ckpt_path}: cannot be read ({err}); it is corrupt or truncated"
            ) from None
        return path, checkpoint

    if unreadable:
        raise ConfigError(
            f"{unreadable[0]} is corrupt or truncated and no older checkpoint is readable; remove "
            f"{RunDir(cfg.local_run_dir).checkpoints} to start over, or give ckpt_path=..."
        )
    return None, None


def _newest_readable(run_dir: RunDir) -> tuple[tuple[Path, dict[str, Any]] | None, list[Path]]:
    """The run folder's newest readable checkpoint (or None), and those that could not be read."""
    readable, unreadable = [], []
    for path in run_dir.resume_candidates():
        try:
            readable.append((read_checkpoint(path), path))
        except UnreadableCheckpoint as err:
            log.warning("%s cannot be read (%s); looking for an older checkpoint", path, err)
            unreadable.append(path)
    if not readable:
        return None, unreadable
    checkpoint, path = max(readable, key=lambda item: item[0].get("global_step", 0))  # first of equals: last.ckpt
    return (path, checkpoint), unreadable
