"""Data: corpora, tokenizers, sequence packing, masking and the LightningDataModule."""

from electra_lit.data.corpus import TextCorpus
from electra_lit.data.datamodule import PretrainDataModule, SequenceDataset
from electra_lit.data.masking import MaskingCollator
from electra_lit.data.packing import PackedSequences, pack_documents
from electra_lit.data.tokenizer import SpecialTokenIds, load_wordpiece, save_tokenizer, train_wordpiece

__all__ = [
    "MaskingCollator",
    "PackedSequences",
    "PretrainDataModule",
    "SequenceDataset",
    "SpecialTokenIds",
    "TextCorpus",
    "load_wordpiece",
    "pack_documents",
    "save_tokenizer",
    "train_wordpiece",
]
