"""Pre-tokenized, packed sequences on disk, for corpora larger than memory.

``electra-prepare-data`` tokenizes and packs a corpus once into ``DIR``:

- ``meta.json``: sequence length, vocab size, the tokenizer's digest, packing, counts per split;
- ``tokenizer/``: the tokenizer used (``tokenizer.json``, ``vocab.txt``);
- ``{split}-{n:05d}.input_ids.npy`` (int32), ``.token_type_ids.npy`` (int8), ``.lengths.npy``
  (int32): fixed-length rows, memory-mapped when training, so feeding costs almost no CPU.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from electra_lit.data.pretraining.packing import to_arrays
from electra_lit.errors import ConfigError

FORMAT = 1
COLUMNS = ("input_ids", "token_type_ids", "lengths")


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()[:16]


class ShardWriter:
    """Collects sequences ``(ids, segment_a_end)`` and writes a shard every ``rows_per_shard``."""

    def __init__(
        self, directory: str | Path, split: str, max_seq_length: int, pad_id: int, rows_per_shard: int = 65536
    ):
        self.directory, self.split = Path(directory), split
        self.max_seq_length, self.pad_id, self.rows_per_shard = max_seq_length, pad_id, rows_per_shard
        self.rows: list[tuple[list[int], int]] = []
        self.shards: list[dict] = []
        self.tokens = 0

    def add(self, rows: Iterable[tuple[list[int], int]]) -> None:
        for row in rows:
            self.rows.append(row)
            if len(self.rows) == self.rows_per_shard:
                self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        arrays = to_arrays(self.rows, self.max_seq_length, self.pad_id)
        stem = f"{self.split}-{len(self.shards):05d}"
        for column in COLUMNS:
            np.save(self.directory / f"{stem}.{column}.npy", getattr(arrays, column))
        self.shards.append({"stem": stem, "rows": len(self.rows)})
        self.tokens += int(arrays.lengths.sum())
        self.rows = []

    def close(self) -> dict:
        self._flush()
        rows = sum(s["rows"] for s in self.shards)
        return {
            "shards": self.shards,
            "rows": rows,
            "tokens": self.tokens,
            "padding_fraction": 1 - self.tokens / max(1, rows * self.max_seq_length),
        }


class ShardedSequences:
    """The rows of one split across its shards; ``row(i)`` reads one row (memory-mapped, opened lazily
    so that loader workers open their own maps instead of receiving copies)."""

    def __init__(self, directory: str | Path, split: str):
        self.directory = Path(directory)
        meta = read_meta(self.directory)
        if split not in meta["splits"]:
            raise ConfigError(f"data.shards={directory}: no {split!r} split; it has {', '.join(meta['splits'])}")
        self.stems = [s["stem"] for s in meta["splits"][split]["shards"]]
        self.ends = np.cumsum([s["rows"] for s in meta["splits"][split]["shards"]]).tolist()
        self.max_seq_length = meta["max_seq_length"]
        self._maps: list[dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": None}

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        if self._maps is None:
            self._maps = [
                {c: np.load(self.directory / f"{stem}.{c}.npy", mmap_mode="r") for c in COLUMNS} for stem in self.stems
            ]
        shard = bisect.bisect_right(self.ends, index)
        offset = index - (self.ends[shard - 1] if shard else 0)
        maps = self._maps[shard]
        return (
            np.asarray(maps["input_ids"][offset]),
            np.asarray(maps["token_type_ids"][offset]),
            int(maps["lengths"][offset]),
        )


def read_meta(directory: str | Path) -> dict:
    path = Path(directory).expanduser() / "meta.json"
    if not path.is_file():
        raise ConfigError(f"data.shards={directory}: no meta.json there; write the shards with electra-prepare-data")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise ConfigError(f"data.shards={directory}: format {meta.get('format')}, this version reads {FORMAT}")
    return meta
