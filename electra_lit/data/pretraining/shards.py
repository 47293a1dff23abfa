"""Pre-tokenized, packed sequences on disk, for corpora larger than memory.

``electra-prepare-data`` tokenizes and packs a corpus once into ``DIR``:

- ``meta.json``: sequence length, vocab size, the tokenizer's digest, packing, counts per split,
  and which part of the corpus this is (``num_shards``, ``shard_index``);
- ``tokenizer/``: the tokenizer used (``tokenizer.json``, ``vocab.txt``);
- ``{split}-{n:05d}.input_ids.npy`` (int32), ``.token_type_ids.npy`` (int8), ``.lengths.npy``
  (int32): fixed-length rows, memory-mapped when training, so feeding costs almost no CPU.

``data.shards`` reads one such folder, or several as one dataset (:func:`shard_folders`: a list,
a parent folder, a glob): one machine's part each of a corpus split across machines, or separate
corpora. :func:`read_meta` checks that they fit together (the manifest check) before any is read.
A folder may be a URL (``s3://bucket/books-128``, a glob of them, ...): the same checks run on the
store, and rows are read through a bounded local cache (electra_lit.data.pretraining.shard_cache).
"""

from __future__ import annotations

import bisect
import glob
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from electra_lit import storage
from electra_lit.data.pretraining.packing import PackedSequences, to_arrays
from electra_lit.data.pretraining.shard_cache import GB, RemoteFile, ShardCache
from electra_lit.errors import ConfigError

FORMAT = 1
COLUMNS = ("input_ids", "token_type_ids", "lengths")  # PackedSequences' fields, in order
SAME_IN_EVERY_FOLDER = ("tokenizer", "max_seq_length", "packing")  # what folders read together must share
DEFAULT_CACHE_GB = 20.0  # data.shard_cache_gb's default

Folder = Path | str  # a local folder, or the URL of a remote one


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()[:16]


class ShardWriter:
    """Collects sequences and writes a shard every ``rows_per_shard``: rows ``(ids, segment_a_end)``
    with :meth:`add`, or already padded arrays (what prepare's worker processes send) with
    :meth:`add_arrays`."""

    def __init__(
        self, directory: str | Path, split: str, max_seq_length: int, pad_id: int, rows_per_shard: int = 65536
    ):
        self.directory, self.split = Path(directory), split
        self.max_seq_length, self.pad_id, self.rows_per_shard = max_seq_length, pad_id, rows_per_shard
        self.pending: list[PackedSequences] = []
        self.pending_rows = 0
        self.shards: list[dict] = []
        self.tokens = 0
        self.written: list[Path] = []  # every file this writer began, for remove()

    def add(self, rows: Iterable[tuple[list[int], int]]) -> None:
        rows = list(rows)
        if rows:
            self.add_arrays(to_arrays(rows, self.max_seq_length, self.pad_id))

    def add_arrays(self, arrays: PackedSequences) -> None:
        if not len(arrays):
            return
        self.pending.append(arrays)
        self.pending_rows += len(arrays)
        while self.pending_rows >= self.rows_per_shard:
            self._flush(self.rows_per_shard)

    def _flush(self, rows: int) -> None:
        """Write the first ``rows`` pending rows as the next shard; keep the rest pending."""
        columns = [np.concatenate([getattr(p, c) for p in self.pending]) for c in COLUMNS]
        stem = f"{self.split}-{len(self.shards):05d}"
        for column, values in zip(COLUMNS, columns, strict=True):
            path = self.directory / f"{stem}.{column}.npy"
            self.written.append(path)
            np.save(path, values[:rows])
        self.shards.append({"stem": stem, "rows": rows})
        self.tokens += int(columns[-1][:rows].sum())
        rest = PackedSequences(*(values[rows:] for values in columns))
        self.pending, self.pending_rows = ([rest] if len(rest) else []), len(rest)

    def remove(self) -> None:
        """Delete the files written so far: what a failed preparation leaves is no data to read."""
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written, self.shards, self.pending, self.pending_rows = [], [], [], 0

    def close(self) -> dict:
        if self.pending_rows:
            self._flush(self.pending_rows)
        rows = sum(s["rows"] for s in self.shards)
        return {
            "shards": self.shards,
            "rows": rows,
            "tokens": self.tokens,
            "padding_fraction": 1 - self.tokens / max(1, rows * self.max_seq_length),
        }


class ShardedSequences:
    """The rows of one split across its shards, of one folder or several (``data.shards``, see
    :func:`read_meta`); ``row(i)`` / ``rows(indices)`` read rows (memory-mapped, opened lazily so
    that loader workers open their own maps instead of receiving copies). Shards in a remote folder
    are read through a :class:`ShardCache` of at most ``cache_gb`` GB under ``cache_dir``."""

    def __init__(
        self,
        shards: str | Path | Sequence[str | Path],
        split: str,
        cache_dir: str = storage.DEFAULT_CACHE_DIR,
        cache_gb: float = DEFAULT_CACHE_GB,
    ):
        meta = read_meta(shards)
        if split not in meta["splits"]:
            raise ConfigError(f"data.shards={shards}: no {split!r} split; it has {', '.join(meta['splits'])}")
        parts = meta["splits"][split]["shards"]
        self.files = [_in_folder(s["folder"], s["stem"]) for s in parts]
        self.ends = np.cumsum([s["rows"] for s in parts]).tolist()
        self.max_seq_length = meta["max_seq_length"]
        self._remote = self._remote_files(meta["folders"], parts)
        self.cache = None
        if any(self._remote):
            files = [file for columns in self._remote if columns for file in columns.values()]
            remote_folders = [f for f in meta["folders"] if storage.is_remote(f)]
            self.cache = ShardCache(files, remote_folders, cache_dir, int(cache_gb * GB))
            self.cache.trim()
        self._pid: int | None = None

    @staticmethod
    def _remote_files(folders: list[str], parts: list[dict]) -> list[dict[str, RemoteFile] | None]:
        """Per shard: its column files on the store (each folder listed once), or None if local."""
        listings = {folder: storage.list_files(folder) for folder in folders if storage.is_remote(folder)}
        remote = []
        for shard in parts:
            listing = listings.get(shard["folder"])
            if listing is None:
                remote.append(None)
                continue
            columns = {}
            for column in COLUMNS:
                name = f"{shard['stem']}.{column}.npy"
                if name not in listing:
                    raise ConfigError(
                        f"data.shards={shard['folder']}: meta.json names {name}, which is not there; "
                        "the folder is incomplete, prepare it again"
                    )
                url = storage.join(shard["folder"], name)
                columns[column] = RemoteFile(url, int(listing[name]["size"]), storage.fingerprint(listing[name]))
            remote.append(columns)
        return remote

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def __getstate__(self) -> dict:
        """What a spawned worker receives: no open maps (it opens its own)."""
        return {**{k: v for k, v in self.__dict__.items() if k != "_columns"}, "_pid": None}

    def _entries(self) -> list[dict[str, np.ndarray | int | None]]:
        """Per shard, per column: the local memory map, or (remote) the cache's file index; made
        in each process on first use."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            indices = iter(range(len(self.cache.files) if self.cache else 0))
            self._columns = [
                {c: next(indices) for c in COLUMNS} if remote else {c: None for c in COLUMNS} for remote in self._remote
            ]
        return self._columns

    def _array(self, shard: int, column: str) -> tuple[np.ndarray | None, int | None]:
        """(the column's rows as an array, or None) and the cache's index of a remote file."""
        entry = self._entries()[shard][column]
        if isinstance(entry, np.ndarray):
            return entry, None
        if entry is None:  # a local shard
            array = self._columns[shard][column] = np.load(f"{self.files[shard]}.{column}.npy", mmap_mode="r")
            return array, None
        return self.cache.array(entry), entry

    def _place(self, index: int) -> tuple[int, int]:
        """(shard, row within it) of row ``index``."""
        shard = bisect.bisect_right(self.ends, index)
        return shard, index - (self.ends[shard - 1] if shard else 0)

    def rows(self, indices: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """Rows ``indices``: from local maps, and in one batch of byte-range reads those of remote
        files that are not copied here (yet)."""
        values: dict[tuple[int, str], np.ndarray] = {}
        missing: list[tuple[int, str]] = []
        requests: list[tuple[int, int]] = []
        for n, index in enumerate(indices):
            shard, offset = self._place(index)
            for column in COLUMNS:
                array, file = self._array(shard, column)
                if array is not None:
                    values[n, column] = array[offset]
                else:
                    missing.append((n, column))
                    requests.append((file, offset))
        if requests:
            values.update(zip(missing, self.cache.read_rows(requests), strict=True))
        return [
            (np.asarray(values[n, "input_ids"]), np.asarray(values[n, "token_type_ids"]), int(values[n, "lengths"]))
            for n in range(len(indices))
        ]

    def row(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        return self.rows([index])[0]


# ------------------------------------------------------------------ reading one or several folders
def shard_folders(shards: str | Path | Sequence[str | Path]) -> list[Folder]:
    """The folders ``data.shards`` names, in order: each entry of a list (or the one value) is a
    folder holding meta.json, a parent folder whose subfolders holding meta.json are taken (by
    name), or a glob pattern of such folders; a local path or a URL alike. A subfolder or match
    with shard files but no meta.json is an unfinished preparation, and refused rather than left
    out unnoticed."""
    if not isinstance(shards, (str, Path, Sequence)):
        raise ConfigError(f"data.shards={shards} is not a folder, a list of folders, a parent folder or a glob")
    entries = [shards] if isinstance(shards, (str, Path)) else list(shards)
    folders: list[Folder] = []
    for entry in entries:
        candidates = _remote_candidates(str(entry)) if storage.is_remote(entry) else _local_candidates(entry)
        found = [folder for folder in candidates if _finished(folder, entry)]
        if not found:
            raise ConfigError(
                f"data.shards={entry}: no meta.json there, nor in its subfolders or glob matches; "
                "write the shards with electra-prepare-data"
            )
        folders.extend(found)
    return folders


def _local_candidates(entry: str | Path) -> list[Path]:
    """The folder itself, its subfolders (a parent), or a glob's matching folders."""
    path = Path(entry).expanduser()
    if (path / "meta.json").is_file():
        return [path]
    if path.is_dir():  # an unfinished folder itself, or a parent
        return [path] if _holds_shards(path) else sorted(p for p in path.iterdir() if p.is_dir())
    return sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_dir())


def _remote_candidates(entry: str) -> list[str]:
    """:func:`_local_candidates` on the store, after :func:`storage.check_url` (a missing bucket,
    refused credentials or an endpoint that does not answer is one line naming data.shards)."""
    storage.check_url(entry, "data.shards", must_exist=False)
    fs, path = storage.filesystem(entry, "data.shards")
    fs.invalidate_cache()  # what another process put since this one last listed
    entry = entry.rstrip("/")
    if _has_meta(entry):
        return [entry]
    if fs.isdir(path):
        if _holds_shards(entry):
            return [entry]
        found = fs.ls(path, detail=True)
    else:
        found = fs.glob(path, detail=True).values()
    return sorted(fs.unstrip_protocol(info["name"]) for info in found if info["type"] == "directory")


def _in_folder(folder: Folder, name: str) -> Folder:
    return storage.join(folder, name) if storage.is_remote(folder) else Path(folder) / name


def _has_meta(folder: Folder) -> bool:
    if storage.is_remote(folder):
        fs, path = storage.filesystem(folder, "data.shards")
        return fs.isfile(storage.join(path, "meta.json"))
    return (Path(folder) / "meta.json").is_file()


def _finished(folder: Folder, entry: str | Path) -> bool:
    """Whether ``folder`` holds finished shards (meta.json); refuses an unfinished preparation."""
    if _has_meta(folder):
        return True
    if _holds_shards(folder):
        raise ConfigError(
            f"data.shards={entry}: {folder} holds shards but no meta.json, an unfinished electra-prepare-data; "
            "run it again there, or leave that folder out"
        )
    return False


def _holds_shards(folder: Folder) -> bool:
    if storage.is_remote(folder):
        fs, path = storage.filesystem(folder, "data.shards")
        return bool(fs.glob(storage.join(path, "*.input_ids.npy")))
    return next(Path(folder).glob("*.input_ids.npy"), None) is not None


def read_folder_meta(folder: Folder) -> dict:
    """One folder's meta.json; folders from before machine shards count as the only part."""
    if storage.is_remote(folder):
        fs, path = storage.filesystem(folder, "data.shards")
        text = fs.cat_file(storage.join(path, "meta.json")).decode()
    else:
        text = (Path(folder) / "meta.json").read_text()
    meta = json.loads(text)
    if meta.get("format") != FORMAT:
        raise ConfigError(f"data.shards={folder}: format {meta.get('format')}, this version reads {FORMAT}")
    return {"num_shards": 1, "shard_index": 0, **meta}


def check_manifest(metas: list[tuple[Folder, dict]]) -> None:
    """Refuse folders that cannot be one dataset, in one line naming them and their values: another
    tokenizer, sequence length or packing; a machine's part missing from, or twice in, its set
    (the folders of one source and num_shards)."""
    for key in SAME_IN_EVERY_FOLDER:
        if len({meta[key] for _, meta in metas}) > 1:
            listed = ", ".join(f"{folder}: {key}={meta[key]}" for folder, meta in metas)
            raise ConfigError(
                f"data.shards: the folders differ in {key} ({listed}); read together only folders "
                f"prepared with one {key}"
            )
    sets: dict[tuple[str, int], dict[int, list[Folder]]] = {}
    for folder, meta in metas:
        parts = sets.setdefault((meta.get("source", "?"), meta["num_shards"]), {})
        parts.setdefault(meta["shard_index"], []).append(folder)
    for (source, num_shards), parts in sets.items():
        listed = ", ".join(f"{f}: shard_index={i}" for i, folders in sorted(parts.items()) for f in folders)
        for index in range(num_shards):
            if index not in parts:
                raise ConfigError(
                    f"data.shards: shard_index={index} of num_shards={num_shards} of {source} is missing "
                    f"({listed}); add that machine's folder (one without meta.json is unfinished)"
                )
            if len(parts[index]) > 1:
                raise ConfigError(
                    f"data.shards: shard_index={index} of num_shards={num_shards} of {source} is there "
                    f"{len(parts[index])} times ({listed}); give each part once"
                )


def read_meta(shards: str | Path | Sequence[str | Path]) -> dict:
    """The meta.json of what ``data.shards`` names, as one: the first folder's, with ``folders``
    and each split's shards from all folders in order (each shard naming its ``folder``), their
    rows and tokens summed. Several folders pass :func:`check_manifest` first."""
    metas = [(folder, read_folder_meta(folder)) for folder in shard_folders(shards)]
    check_manifest(metas)
    splits: dict[str, dict] = {}
    for folder, meta in metas:
        for split, info in meta["splits"].items():
            merged = splits.setdefault(split, {"shards": [], "rows": 0, "tokens": 0})
            merged["shards"] += [{**shard, "folder": str(folder)} for shard in info["shards"]]
            merged["rows"] += info["rows"]
            merged["tokens"] += info["tokens"]
    return {**metas[0][1], "folders": [str(folder) for folder, _ in metas], "splits": splits}
