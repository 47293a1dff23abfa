"""Checks of the composed config that run before anything is built or trained.

Each failure is a :class:`ConfigError` with a one-line message naming the key, the value and
what would work, so a typo costs seconds rather than a failed job.
"""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf

from electra_lit.data.pretraining.packing import PACKING_MODES
from electra_lit.errors import ConfigError
from electra_lit.models import EncoderConfig, check_sharing, generator_config



def _require(condition: bool, key: str, value: object, problem: str) -> None:
    if not condition:
        raise ConfigError(f"{key}={value} {problem}")


def validate_config(cfg: DictConfig) -> None:
    """Check values and cross-key constraints of a pretraining config."""
    masking, data, model = cfg.masking, cfg.data, cfg.model

    p = masking.mask_prob
    _require(isinstance(p, (int, float)) and 0 < p < 1, "masking.mask_prob", p,
             "is outside (0, 1); use a fraction such as masking.mask_prob=0.15")
    q, r = masking.mask_token_prob, masking.random_token_prob
    _require(isinstance(q, (int, float)) and 0 <= q <= 1, "masking.mask_token_prob", q,
             "is outside [0, 1]; ELECTRA uses 0.85, BERT 0.8")
    _require(isinstance(r, (int, float)) and 0 <= r <= 1 - q, "masking.random_token_prob", r,
             f"must be in [0, 1 - masking.mask_token_prob = {1 - q:g}]; BERT uses 0.1")

    disc = OmegaConf.to_container(model.discriminator, resolve=True)
    fields = {f.name for f in dataclasses.fields(EncoderConfig)} - {"vocab_size"}
    unknown = sorted(set(disc) - fields)
    _require(not unknown, "model.discriminator", unknown,
             f"has unknown keys; the keys are: {', '.join(sorted(fields))}")
    try:
        encoder = EncoderConfig(vocab_size=1, **disc)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.discriminator: {err}") from None

    length = data.max_seq_length
    _require(isinstance(length, int) and 8 <= length <= encoder.max_position_embeddings,
             "data.max_seq_length", length,
             f"must be in [8, {encoder.max_position_embeddings}] (the model's "
             "max_position_embeddings); lower it or raise model.discriminator.max_position_embeddings")
    n = masking.max_predictions
    _require(n is None or (isinstance(n, int) and 1 <= n <= length), "masking.max_predictions", n,
             f"must be null or in [1, data.max_seq_length={length}]")
    _require(isinstance(data.batch_size, int) and data.batch_size >= 1, "data.batch_size", data.batch_size,
             "must be a positive integer")
    _require(data.packing in PACKING_MODES, "data.packing", data.packing,
             f"is not a packing mode; choose one of: {', '.join(PACKING_MODES)}")
    for key in ("single_segment_prob", "short_seq_prob"):
        _require(isinstance(data[key], (int, float)) and 0 <= data[key] <= 1, f"data.{key}", data[key],
                 "is outside [0, 1]")

    f = model.generator_fraction
    _require(isinstance(f, (int, float)) and 0 < f <= 1, "model.generator_fraction", f,
             "must be in (0, 1]; the paper uses 1/4 (Small, Large) or 1/3 (Base)")
    sizes = OmegaConf.to_container(model.generator, resolve=True) if model.get("generator") else None
    try:
        check_sharing(generator_config(encoder, f, sizes), encoder, model.embedding_sharing)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None

    steps = cfg.trainer.get("max_steps")
    _require(isinstance(steps, int) and steps > 0, "trainer.max_steps", steps,
             "must be a positive integer: the learning rate decays to 0 at that step")
    warmup = cfg.lr_schedule.warmup_steps
    _require(isinstance(warmup, int) and warmup >= 0, "lr_schedule.warmup_steps", warmup,
             "must be a non-negative integer")
    _require(cfg.optimizer.lr > 0, "optimizer.lr", cfg.optimizer.lr, "must be positive")
    _require(cfg.float32_matmul_precision in ("highest", "high", "medium"), "float32_matmul_precision",
             cfg.float32_matmul_precision, "is not one of: highest, high, medium")
