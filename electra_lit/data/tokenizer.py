"""WordPiece tokenizers from the ``tokenizers`` library: a vocab file, or one trained on a corpus.

Both use BERT's text pipeline (BERT normalizer, optional lower-casing, BERT pre-tokenizer).
Nothing downstream hard-codes a token id: :class:`SpecialTokenIds` reads them from the vocab.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.utils import instantiate
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from electra_lit import storage
from electra_lit.data.pretraining.corpus import Corpus
from electra_lit.errors import ConfigError
from electra_lit.storage import DEFAULT_CACHE_DIR

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass(frozen=True)
class SpecialTokenIds:
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Tokenizer) -> SpecialTokenIds:
        ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
        missing = [token for token, i in ids.items() if i is None]
        if missing:
            raise ConfigError(
                f"the tokenizer's vocab lacks {', '.join(missing)}; ELECTRA needs all of "
                f"{', '.join(SPECIAL_TOKENS)} in the vocab"
            )
        return cls(*(ids[token] for token in SPECIAL_TOKENS))

    @property
    def never_masked(self) -> tuple[int, ...]:
        """Tokens the masking never picks: padding, [CLS], [SEP] and [MASK] itself."""
        return (self.pad, self.cls, self.sep, self.mask)


def builtin_vocab_file() -> Path:
    """The BERT uncased WordPiece vocab (30522 entries) shipped with the package."""
    return Path(str(resources.files("electra_lit.assets") / "vocab" / "bert-base-uncased-vocab.txt"))


def _bert_text_pipeline(model: models.WordPiece, lowercase: bool) -> Tokenizer:
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def load_wordpiece(vocab_file: str | None = None, lowercase: bool = True) -> Tokenizer:
    """A WordPiece tokenizer from a ``vocab.txt`` (one token per line); ``None`` is BERT uncased."""
    path = Path(vocab_file).expanduser() if vocab_file else builtin_vocab_file()
    if not path.is_file():
        raise ConfigError(f"tokenizer.vocab_file: '{vocab_file}' does not exist; give a vocab.txt path")
    tokenizer = _bert_text_pipeline(models.WordPiece.from_file(str(path), unk_token="[UNK]"), lowercase)
    SpecialTokenIds.from_tokenizer(tokenizer)  # fail now, naming the missing tokens
    return tokenizer


def load_tokenizer(path: str, cache_dir: str = DEFAULT_CACHE_DIR) -> Tokenizer:
    """A saved tokenizer: a ``tokenizer.json``, a ``vocab.txt``, or a folder holding either (as
    ``electra-tokenizer``, ``electra-export`` and Hugging Face's ``save_pretrained`` write them);
    at a URL (the tokenizer/ of shards on object storage), copied into ``cache_dir`` first."""
    path_ = storage.fetch(path, cache_dir, "tokenizer.path")
    if path_.is_dir():
        json_file, vocab_file, folder = path_ / "tokenizer.json", path_ / "vocab.txt", path_
    elif path_.suffix == ".json":
        json_file, vocab_file, folder = path_, None, path_.parent
    else:
        json_file, vocab_file, folder = None, path_, path_.parent
    if json_file is not None and json_file.is_file():
        tokenizer = Tokenizer.from_file(str(json_file))
        SpecialTokenIds.from_tokenizer(tokenizer)  # fail now, naming the missing tokens
        return tokenizer
    if vocab_file is not None and vocab_file.is_file():
        config = folder / "tokenizer_config.json"
        lowercase = json.loads(config.read_text()).get("do_lower_case", True) if config.is_file() else True
        return load_wordpiece(str(vocab_file), lowercase=lowercase)
    raise ConfigError(f"tokenizer.path={path}: no tokenizer.json or vocab.txt there")


def train_wordpiece(
    corpus: Corpus | None,
    vocab_size: int = 8192,
    lowercase: bool = True,
    min_frequency: int = 2,
    cache_dir: str | None = "~/.cache/electra_lit",
    max_documents: int | None = None,
) -> Tokenizer:
    """Train a WordPiece vocab on ``corpus`` (its first ``max_documents`` documents if given), or
    load it from ``cache_dir`` if this corpus and these settings were trained before (no cache
    with ``cache_dir=None``). The cache file is written atomically, so runs that start together
    (a multirun, DDP ranks) never read a half-written file."""
    if corpus is None:
        raise ConfigError(
            "tokenizer=wordpiece trains on data.corpus, and there is none (data=shards?); "
            "use the data's tokenizer: tokenizer=pretrained tokenizer.path=DIR"
        )
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ConfigError(f"tokenizer.vocab_size={vocab_size} is too small; use e.g. 8192")
    case = "uncased" if lowercase else "cased"
    key = f"wordpiece-{corpus.fingerprint()}-{vocab_size}-{case}-min{min_frequency}-docs{max_documents}"
    path = Path(cache_dir).expanduser() / "tokenizers" / f"{key}.json" if cache_dir else None
    if path is not None and path.is_file():
        return Tokenizer.from_file(str(path))

    log.info(
        "Training a %d-token WordPiece vocab on %s%s",
        vocab_size,
        corpus.description,
        f"; cached at {path}" if path else "",
    )
    tokenizer = _bert_text_pipeline(models.WordPiece(unk_token="[UNK]"), lowercase)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=sys.stderr.isatty(),  # in a log file its bars are only blank lines
    )
    documents = islice(corpus.documents(), max_documents)
    tokenizer.train_from_iterator((sentence for document in documents for sentence in document), trainer)
    if path is None:
        return tokenizer
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        tmp.write(tokenizer.to_str())
    os.replace(tmp.name, path)
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, directory: str | Path) -> None:
    """Write ``tokenizer.json`` and a BERT-style ``vocab.txt`` (token per line, in id order)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    (directory / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")


def train_tokenizer_from_config(cfg: DictConfig) -> Tokenizer:
    """What ``electra-tokenizer`` does: train a WordPiece vocab on ``cfg.data.corpus`` and save it to ``cfg.out_dir``."""
    if cfg.data.corpus is None:
        raise ConfigError("electra-tokenizer needs a corpus: data=austen, text, table or hub")
    corpus = instantiate(cfg.data.corpus)
    corpus.check()
    tokenizer = train_wordpiece(
        corpus,
        vocab_size=cfg.vocab_size,
        lowercase=cfg.lowercase,
        min_frequency=cfg.min_frequency,
        cache_dir=None,
        max_documents=cfg.max_documents,
    )
    SpecialTokenIds.from_tokenizer(tokenizer)
    save_tokenizer(tokenizer, cfg.out_dir)
    print(
        f"wrote {cfg.out_dir}: {tokenizer.get_vocab_size()} tokens; use it with "
        f"tokenizer=pretrained tokenizer.path={cfg.out_dir}"
    )
    return tokenizer
