"""Pure-PyTorch models: no Lightning, no Hydra."""

from electra_lit.models.electra import (
    EMBEDDING_SHARING_MODES,
    MAIN_HEADS,
    Discriminator,
    GDESWordEmbedding,
    MaskedLM,
    ModelConfig,
    build_models,
    check_sharing,
    generator_config,
)
from electra_lit.models.encoder import Embeddings, Encoder, EncoderConfig, EncoderSizes, TransformerLayer, init_weights
from electra_lit.models.flops import pretraining_flops

__all__ = [
    "EMBEDDING_SHARING_MODES",
    "MAIN_HEADS",
    "Discriminator",
    "Embeddings",
    "Encoder",
    "EncoderConfig",
    "EncoderSizes",
    "GDESWordEmbedding",
    "MaskedLM",
    "ModelConfig",
    "TransformerLayer",
    "build_models",
    "check_sharing",
    "generator_config",
    "init_weights",
    "pretraining_flops",
]
