"""``electra-tokenizer``: train a WordPiece vocab on a corpus and save it.

Any ``data`` option is the corpus; writes ``out_dir/tokenizer.json`` and ``out_dir/vocab.txt``.
"""

from __future__ import annotations

import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

import electra_lit.train  # noqa: F401  registers the ${run_name:...} resolver
from electra_lit.config_checks import check_group_choices
from electra_lit.data.tokenizer import SpecialTokenIds, save_tokenizer, train_wordpiece
from electra_lit.errors import ConfigError, one_line_errors


def train_tokenizer(cfg: DictConfig):
    if cfg.data.corpus is None:
        raise ConfigError("electra-tokenizer needs a corpus: data=austen, text, table or hub")
    corpus = instantiate(cfg.data.corpus)
    corpus.check()
    tokenizer = train_wordpiece(corpus, vocab_size=cfg.vocab_size, lowercase=cfg.lowercase,
                                min_frequency=cfg.min_frequency, cache_dir=None, max_documents=cfg.max_documents)
    SpecialTokenIds.from_tokenizer(tokenizer)
    save_tokenizer(tokenizer, cfg.out_dir)
    print(f"wrote {cfg.out_dir}: {tokenizer.get_vocab_size()} tokens; use it with "
          f"tokenizer=pretrained tokenizer.path={cfg.out_dir}")
    return tokenizer


@hydra.main(version_base="1.3", config_path="pkg://electra_lit.conf", config_name="train_tokenizer")
def _hydra_main(cfg: DictConfig) -> None:
    with one_line_errors("electra-tokenizer"):
        train_tokenizer(cfg)


def main() -> None:
    with one_line_errors("electra-tokenizer"):
        check_group_choices(sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
