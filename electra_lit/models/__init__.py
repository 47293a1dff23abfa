"""Pure-PyTorch models: no Lightning, no Hydra."""

from electra_lit.models.electra import (
    EMBEDDING_SHARING_MODES,
    MAIN_HEADS,
    Discriminator,
    GDESWordEmbedding,
    MaskedLM,
    build_models,
    check_sharing,
    generator_config,
)
from electra_lit.models.encoder import Embeddings, Encoder, EncoderConfig, TransformerLayer, init_weights

__all__ = [
    "EMBEDDING_SHARING_MODES",
    "MAIN_HEADS",
    "Discriminator",
    "Embeddings",
    "Encoder",
    "EncoderConfig",
    "GDESWordEmbedding",
    "MaskedLM",
    "TransformerLayer",
    "build_models",
    "check_sharing",
    "generator_config",
    "init_weights",
]
