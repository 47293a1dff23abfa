"""Pretraining objectives: pure PyTorch callables (generator, main model, batch) -> PretrainOutput.

Each declares ``uses_generator`` (per instance where a key decides it: ``sampler=uniform`` needs
no generator) and ``main_head`` (``rtd``, ``mlm`` or ``mlm_copy``), which tell
:func:`electra_lit.models.build_models` what to build.
"""

from electra_lit.objectives.common import (
    Corruption,
    Detections,
    PretrainOutput,
    Sampling,
    TokenPredictions,
    corrupt,
    corrupt_uniformly,
    corrupt_with_generator,
    gumbel_sample,
    masked_lm_loss,
    uniform_sample,
    weighted_mean,
)
from electra_lit.objectives.mlm import MaskedLanguageModeling
from electra_lit.objectives.replace_mlm import AllTokensMLM, ReplaceMLM
from electra_lit.objectives.rtd import ReplacedTokenDetection

__all__ = [
    "AllTokensMLM",
    "Corruption",
    "Detections",
    "MaskedLanguageModeling",
    "PretrainOutput",
    "ReplaceMLM",
    "ReplacedTokenDetection",
    "Sampling",
    "TokenPredictions",
    "corrupt",
    "corrupt_uniformly",
    "corrupt_with_generator",
    "gumbel_sample",
    "masked_lm_loss",
    "uniform_sample",
    "weighted_mean",
]
