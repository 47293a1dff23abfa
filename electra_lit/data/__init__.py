"""Data: corpora, tokenizers, sequence packing, masking, shards and the DataModules."""

from electra_lit.data.corpus import Corpus, HubCorpus, TableCorpus, TextCorpus
from electra_lit.data.datamodule import PretrainDataModule, SequenceDataset
from electra_lit.data.masking import MaskingCollator
from electra_lit.data.packing import PackedSequences, SequenceBuilder, pack_documents
from electra_lit.data.shards import ShardedSequences, ShardWriter
from electra_lit.data.streaming import StreamingSequences
from electra_lit.data.tokenizer import (
    SpecialTokenIds,
    load_tokenizer,
    load_wordpiece,
    save_tokenizer,
    train_wordpiece,
)

__all__ = [
    "Corpus",
    "HubCorpus",
    "MaskingCollator",
    "PackedSequences",
    "PretrainDataModule",
    "SequenceBuilder",
    "SequenceDataset",
    "ShardWriter",
    "ShardedSequences",
    "SpecialTokenIds",
    "StreamingSequences",
    "TableCorpus",
    "TextCorpus",
    "load_tokenizer",
    "load_wordpiece",
    "pack_documents",
    "save_tokenizer",
    "train_wordpiece",
]
