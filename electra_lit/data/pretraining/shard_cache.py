"""Shard files on object storage (``data.shards=s3://...``), read row by row as local ones are.

The access order decides the design. The training loader samples every row of the split in a
random order (a RandomSampler seeded by ``data.seed``, or Lightning's DistributedSampler over
several devices), so the rows of one batch lie in unrelated shard files and no rank or worker needs
one file before another: every file not on this machine is equally likely to be needed next.
Validation reads its rows in order. So:

- a row of a file already copied to this machine is read from the copy, memory-mapped, exactly as a
  local shard is;
- any other row is read from the store by byte range, one request per column; a batch's requests go
  out together (:meth:`ShardCache.read_rows`, called through the dataset's ``__getitems__``), in
  the loader's worker processes, which fetch batches ahead of the step;
- in every process that reads, a background thread copies whole files into the cache (their
  :func:`storage.mirror_dir` under ``cache_dir``), smallest first (a shard's lengths file saves as
  many requests as its input_ids file at a fraction of the bytes; equal sizes go in shard order,
  the order validation reads), until this ``data.shards``' copies take ``budget`` bytes; then it
  stops. In a uniformly random order, replacing a copied file by another cannot raise the share of
  rows read locally, it only spends bandwidth, so copies are evicted only by
  :meth:`ShardCache.trim` at setup: outdated copies (the remote file has another ETag or size)
  and, in the reverse of the copying order, whatever exceeds the budget (a smaller
  ``data.shard_cache_gb`` than the last run's).

A row's bytes are the same whichever way they come, and which rows are read when is decided by the
loader's sampler alone, so batches, rank/worker sharding and exact resume are those of local shards.

The processes of a machine (ranks, loader workers, other runs) share the cache: copying, evicting
and the budget arithmetic happen under one file lock (``flock`` on
``cache_dir/remote/.shard-cache.lock``), a copy lands in a temporary file renamed into place, and a
copy counts only once the stamp beside it (``.NAME.version``: the remote file's ETag and size) is
written after it.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from electra_lit import storage
from electra_lit.errors import ConfigError

log = logging.getLogger(__name__)

HEADER_BYTES = 4096  # read to parse an .npy header (128 bytes for a shard's shapes)
LOCK_NAME = ".shard-cache.lock"
GB = 10**9

_held_locks: set[int] = set()  # descriptors of the cache lock this process holds right now


def _forget_inherited_locks() -> None:
    """In a forked child (a loader worker): close the lock descriptors a thread of the parent held
    at the fork. flock belongs to the open file, which the child shares, so the parent's lock
    would otherwise stay held for as long as the child lives."""
    for fd in list(_held_locks):
        try:
            os.close(fd)
        except OSError:
            pass
    _held_locks.clear()


os.register_at_fork(after_in_child=_forget_inherited_locks)


@contextmanager
def cache_lock(root: Path) -> Iterator[None]:
    """The machine-wide lock of the shard cache under ``root`` (released if the process dies)."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    _held_locks.add(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        _held_locks.discard(fd)
        os.close(fd)


@dataclass(frozen=True)
class RemoteFile:
    """A shard file on the store: its URL, size and version (storage.fingerprint of its listing)."""

    url: str
    size: int
    version: str


@dataclass(frozen=True)
class Layout:
    """Where an .npy file's rows are: the data offset, their dtype and shape, how many."""

    offset: int
    dtype: np.dtype
    row_shape: tuple[int, ...]
    rows: int

    @property
    def row_bytes(self) -> int:
        return self.dtype.itemsize * int(np.prod(self.row_shape, dtype=np.int64))


def parse_layout(head: bytes, url: str) -> Layout:
    """The layout of an .npy file from its first bytes (its header)."""
    buffer = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(buffer)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read(buffer)
    except ValueError as err:
        raise ConfigError(f"data.shards: {url} is not a readable .npy shard file ({err})") from None
    if fortran_order or not shape:
        raise ConfigError(f"data.shards: {url} is not a shard file (rows of a C-ordered array)")
    return Layout(buffer.tell(), np.dtype(dtype), tuple(shape[1:]), shape[0])


def stamp_of(path: Path) -> Path:
    return path.with_name(f".{path.name}.version")


class ShardCache:
    """Rows of remote shard files: from their copies on this machine when there, else by byte
    range; a thread per process copies files into the cache while the budget has room.

    Args:
        files: the split's remote files, in shard order.
        folders: the remote shard folders of ``data.shards``; the budget counts the .npy copies
            in their mirrors (both splits, and any other run reading them on this machine).
        cache_dir: the run's cache_dir; copies go to ``storage.mirror_dir(url, cache_dir)``.
        budget_bytes: local disk for those copies; 0 reads every row from the store.
    """

    def __init__(self, files: Sequence[RemoteFile], folders: Sequence[str], cache_dir: str, budget_bytes: int):
        self.files = list(files)
        self.local = [storage.mirror_dir(f.url, cache_dir) for f in self.files]
        self.paths = [storage.filesystem(f.url, "data.shards")[1] for f in self.files]  # within their store
        self.mirrors = sorted({storage.mirror_dir(folder, cache_dir) for folder in folders})
        self.root = Path(cache_dir).expanduser() / "remote"
        self.budget = budget_bytes
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        """What a spawned worker receives: no open maps, no thread; it opens its own."""
        keep = ("files", "local", "paths", "mirrors", "root", "budget")
        return {**{k: self.__dict__[k] for k in keep}, "_pid": None}

    def _here(self) -> None:
        """This process's own state (maps, layouts, filesystems, prefetch thread), made on first
        use in each process: a forked worker must not use its parent's."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._open: dict[int, np.ndarray] = {}
        self._layouts: dict[int, Layout] = {}
        self._filesystems: dict[str, object] = {}
        self._thread: threading.Thread | None = None
        if self.budget > 0:
            self._thread = threading.Thread(target=self._prefetch, name="shard-prefetch", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ reading
    def array(self, index: int) -> np.ndarray | None:
        """File ``index`` memory-mapped from its copy, or None while it has none."""
        self._here()
        array = self._open.get(index)
        if array is None and self.is_copied(index):
            array = self._open[index] = np.load(self.local[index], mmap_mode="r")
        return array

    def read_rows(self, requests: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Rows ``(file index, row)`` read from the store, one byte range each, all at once."""
        self._here()
        self._load_layouts(sorted({index for index, _ in requests} - set(self._layouts)))
        layouts = [self._layouts[index] for index, _ in requests]
        for (index, row), layout in zip(requests, layouts, strict=True):
            if not 0 <= row < layout.rows:
                raise IndexError(f"row {row} of {self.files[index].url}, which has {layout.rows}")
        starts = [layout.offset + row * layout.row_bytes for (_, row), layout in zip(requests, layouts, strict=True)]
        ends = [start + layout.row_bytes for start, layout in zip(starts, layouts, strict=True)]
        blobs = self._cat([index for index, _ in requests], starts, ends)
        rows = []
        for (index, _), layout, blob in zip(requests, layouts, blobs, strict=True):
            if len(blob) != layout.row_bytes:
                raise ConfigError(
                    f"data.shards: {self.files[index].url} is shorter than its header says; was the folder "
                    "changed while it was read? Prepare it again"
                )
            rows.append(np.frombuffer(blob, layout.dtype).reshape(layout.row_shape))
        return rows

    def _load_layouts(self, indices: list[int]) -> None:
        if indices:
            heads = self._cat(indices, [0] * len(indices), [min(HEADER_BYTES, self.files[i].size) for i in indices])
            for index, head in zip(indices, heads, strict=True):
                self._layouts[index] = parse_layout(head, self.files[index].url)

    def _cat(self, indices: list[int], starts: list[int], ends: list[int]) -> list[bytes]:
        """Byte ranges of files, requested together (concurrently where the filesystem is async)."""
        groups: dict[str, list[int]] = {}
        for n, index in enumerate(indices):
            groups.setdefault(self.files[index].url.split("://", 1)[0], []).append(n)
        out: list[bytes] = [b""] * len(indices)
        for protocol, ns in groups.items():
            fs = self._filesystems.get(protocol)
            if fs is None:
                fs = self._filesystems[protocol] = storage.filesystem(self.files[indices[ns[0]]].url, "data.shards")[0]
            paths = [self.paths[indices[n]] for n in ns]
            blobs = fs.cat_ranges(paths, [starts[n] for n in ns], [ends[n] for n in ns], on_error="raise")
            for n, blob in zip(ns, blobs, strict=True):
                out[n] = blob
        return out

    # ------------------------------------------------------------ the copies
    def is_copied(self, index: int) -> bool:
        """Whether file ``index`` has a complete copy of its current version here."""
        path, file = self.local[index], self.files[index]
        try:
            return stamp_of(path).read_text() == file.version and path.stat().st_size == file.size
        except FileNotFoundError:
            return False

    def _prefetch(self) -> None:
        """The prefetch thread: :meth:`fill`; a failure leaves the rows to byte-range reads."""
        try:
            self.fill()
        except Exception as err:  # the reads report a store that is really gone
            log.warning(
                "Prefetching shard files stopped (%s: %s); rows are read from the store", type(err).__name__, err
            )

    def fill(self) -> int:
        """Copy the split's files into the cache, smallest first, until the budget has no room
        for the next one; returns how many this call copied."""
        copied = 0
        for index in self._order():
            if self.is_copied(index):
                continue
            with cache_lock(self.root):
                if self.is_copied(index):  # another process copied it meanwhile
                    continue
                self._remove_partial()
                if self.used_bytes() + self.files[index].size > self.budget:
                    return copied
                self._copy(index)
                copied += 1
        return copied

    def _order(self) -> list[int]:
        """The order files are copied in: smallest first, equal sizes in shard order."""
        return sorted(range(len(self.files)), key=lambda i: self.files[i].size)

    def _copy(self, index: int) -> None:
        """Download file ``index`` (through a temporary file), then write its stamp."""
        log.debug("Copying %s into the shard cache", self.files[index].url)
        storage.download(self.files[index].url, self.local[index])
        stamp_of(self.local[index]).write_text(self.files[index].version)

    def used_bytes(self) -> int:
        """Bytes of .npy copies in the mirrors of this data.shards' folders."""
        total = 0
        for mirror in self.mirrors:
            if mirror.is_dir():
                total += sum(e.stat().st_size for e in os.scandir(mirror) if _is_copy(e.name) and e.is_file())
        return total

    def _remove_partial(self) -> None:
        """Temporary files of copies a killed process left (none is being written: the lock is held)."""
        for mirror in self.mirrors:
            for partial in mirror.glob(".*.npy.*.part"):
                partial.unlink(missing_ok=True)

    def _remove(self, index: int) -> None:
        self.local[index].unlink(missing_ok=True)
        stamp_of(self.local[index]).unlink(missing_ok=True)

    def trim(self) -> None:
        """At setup, before reading: remove outdated copies of the split's files and, in the
        reverse of the order :meth:`fill` copies in, the copies beyond the budget."""
        with cache_lock(self.root):
            self._remove_partial()
            for index, path in enumerate(self.local):
                if path.exists() and not self.is_copied(index):
                    self._remove(index)
            used = self.used_bytes()
            for index in reversed(self._order()):
                if used <= self.budget:
                    break
                if self.local[index].exists():
                    used -= self.local[index].stat().st_size
                    self._remove(index)


def _is_copy(name: str) -> bool:
    return name.endswith(".npy") and not name.startswith(".")
