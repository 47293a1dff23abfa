"""Pretraining objectives: pure PyTorch functions of (models, batch) -> losses."""

from electra_lit.objectives.rtd import PretrainOutput, ReplacedTokenDetection, gumbel_sample, weighted_mean

__all__ = ["PretrainOutput", "ReplacedTokenDetection", "gumbel_sample", "weighted_mean"]
