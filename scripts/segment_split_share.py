"""Segment A's share of the tokens of two-segment sequences, for each ``data.segment_split`` rule.

    python scripts/segment_split_share.py [--seq-len 128 512] [--seed 0]

The built-in corpus (Austen's novels, a document per chapter), the BERT uncased vocab, ``document``
packing and the default rates (single_segment_prob 0.1, short_seq_prob 0.05). Prints one JSON line
per rule and length: ``a_share`` (A's tokens / (A's + B's), [CLS] and [SEP] left out, over the
sequences with a segment B), ``pair_share`` (the share of sequences with a segment B) and
``sequences``. ELECTRA's rule (``released``) gives A about half; ``prefix`` stops A at the first
sentence that would pass half the target, so A holds less.
"""

from __future__ import annotations

import argparse
import json

from electra_lit.data import SpecialTokenIds, TextCorpus, load_wordpiece, pack_documents
from electra_lit.data.pretraining.datamodule import tokenize_documents
from electra_lit.data.pretraining.packing import SEGMENT_SPLITS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tokenizer = load_wordpiece()
    ids = SpecialTokenIds.from_tokenizer(tokenizer)
    documents = tokenize_documents(tokenizer, list(TextCorpus().documents()))
    for rule in SEGMENT_SPLITS:
        for length in args.seq_len:
            packed = pack_documents(documents, length, ids.cls, ids.sep, ids.pad, rng=args.seed, segment_split=rule)
            pairs = (packed.token_type_ids == 1).any(axis=1).mean()
            row = {"segment_split": rule, "max_seq_length": length, "a_share": round(packed.segment_a_share(), 3)}
            print(json.dumps({**row, "pair_share": round(float(pairs), 3), "sequences": len(packed)}))


if __name__ == "__main__":
    main()
