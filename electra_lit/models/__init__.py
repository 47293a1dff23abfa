"""Pure-PyTorch models: no Lightning, no Hydra."""

from electra_lit.models.electra import (
    EMBEDDING_SHARING_MODES,
    Discriminator,
    Generator,
    build_generator_and_discriminator,
    generator_config,
)
from electra_lit.models.encoder import Embeddings, Encoder, EncoderConfig, TransformerLayer, init_weights

__all__ = [
    "EMBEDDING_SHARING_MODES",
    "Discriminator",
    "Embeddings",
    "Encoder",
    "EncoderConfig",
    "Generator",
    "TransformerLayer",
    "build_generator_and_discriminator",
    "generator_config",
    "init_weights",
]
