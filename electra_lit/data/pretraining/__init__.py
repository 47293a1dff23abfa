"""Pretraining data: corpora, sequence packing, masking, shards, streaming, the DataModule, and
electra-prepare-data's shard writing."""
