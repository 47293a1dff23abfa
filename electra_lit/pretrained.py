"""Where a fine-tuning encoder comes from: one of our pretraining checkpoints, or a Hugging Face
transformers folder (ours from electra-export, or a released ELECTRA checkpoint), with its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from electra_lit import storage
from electra_lit.data.tokenizer import load_tokenizer, load_wordpiece
from electra_lit.errors import ConfigError
from electra_lit.models import Encoder, EncoderConfig
from electra_lit.storage import DEFAULT_CACHE_DIR


@dataclass
class PretrainedEncoder:
    encoder: Encoder
    tokenizer: Tokenizer | None


def _from_checkpoint(path: Path) -> PretrainedEncoder:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    try:
        hparams = checkpoint["hyper_parameters"]
        config = EncoderConfig(vocab_size=hparams["vocab_size"], **hparams["model"]["discriminator"])
    except KeyError:
        raise ConfigError(f"init_from={path}: not an electra-pretrain checkpoint (no model hyperparameters)") from None
    prefix = "main_model.encoder."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    delta = state.pop("embeddings.word.delta", None)
    if delta is not None:  # GDES: the discriminator's table is stop_grad(generator's) + delta
        state["embeddings.word.weight"] = state.pop("embeddings.word.source.weight") + delta
    encoder = Encoder(config)
    encoder.load_state_dict(state)
    tokenizer_json = checkpoint.get("tokenizer_json")
    return PretrainedEncoder(encoder, Tokenizer.from_str(tokenizer_json) if tokenizer_json else None)


def check_init_from(init_from: str, cache_dir: str = DEFAULT_CACHE_DIR) -> Path:
    """``init_from`` as a local path: an electra-pretrain .ckpt file or a transformers folder
    (config.json); a URL is fetched into ``cache_dir`` first."""
    path = storage.fetch(init_from, cache_dir, "init_from")
    if not path.is_file() and not (path / "config.json").is_file():
        raise ConfigError(
            f"init_from={init_from}: not an electra-pretrain .ckpt file nor a transformers folder (no config.json)"
        )
    return path


def load_pretrained_encoder(
    init_from: str, tokenizer_vocab: str | None = None, cache_dir: str = DEFAULT_CACHE_DIR
) -> PretrainedEncoder:
    """The encoder and tokenizer of ``init_from`` (a URL is fetched into ``cache_dir``);
    ``tokenizer_vocab`` (a vocab.txt) replaces the tokenizer, and must have the encoder's vocabulary size."""
    path = check_init_from(init_from, cache_dir)
    if path.is_file():
        loaded = _from_checkpoint(path)
    else:
        from electra_lit.hf import load_hf_encoder

        has_tokenizer = (path / "tokenizer.json").is_file() or (path / "vocab.txt").is_file()
        loaded = PretrainedEncoder(load_hf_encoder(path), load_tokenizer(str(path)) if has_tokenizer else None)
    if tokenizer_vocab:
        loaded.tokenizer = load_wordpiece(tokenizer_vocab)
    if loaded.tokenizer is None:
        raise ConfigError(f"init_from={init_from}: no tokenizer with it; give tokenizer_vocab=PATH/vocab.txt")
    vocab, expected = loaded.tokenizer.get_vocab_size(), loaded.encoder.config.vocab_size
    if vocab != expected:
        raise ConfigError(
            f"the tokenizer has {vocab} tokens but the encoder from {init_from} was trained with {expected}; "
            "use the encoder's own tokenizer (leave tokenizer_vocab=null) or its vocab.txt"
        )
    return loaded
