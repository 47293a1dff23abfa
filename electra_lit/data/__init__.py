"""Data: the tokenizer (shared), pretraining corpora and batches (pretraining/), fine-tuning tasks (tasks/)."""

from electra_lit.data.pretraining.corpus import Corpus, HubCorpus, TableCorpus, TextCorpus
from electra_lit.data.pretraining.datamodule import PretrainDataModule, SequenceDataset
from electra_lit.data.pretraining.masking import MaskingCollator
from electra_lit.data.pretraining.packing import PackedSequences, SequenceBuilder, pack_documents
from electra_lit.data.pretraining.shards import ShardedSequences, ShardWriter
from electra_lit.data.pretraining.streaming import StreamingSequences
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
