"""The LightningModules: pretraining (generator + main model, the objective's step) and
fine-tuning (an encoder with a classification or regression head), and their metrics."""

from electra_lit.lit.modules.classifier import ElectraClassifierModule
from electra_lit.lit.modules.metrics import PretrainMetrics
from electra_lit.lit.modules.pretrain import ElectraPretrainModule

__all__ = ["ElectraClassifierModule", "ElectraPretrainModule", "PretrainMetrics"]
