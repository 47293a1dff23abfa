"""Corpora: where pretraining text comes from, read as documents of sentences.

ELECTRA's data builder never lets a sequence span two documents and splits segments A and B at
sentence boundaries, so a corpus yields documents, each a list of sentences. Every source goes
through the ``datasets`` library (always streamed: nothing is copied to a cache), so a local
path and a hub name behave the same:

- :class:`TextCorpus`: ``.txt``/``.txt.gz`` files, folders or globs; a document per file, per
  blank-line separated block, or per "Chapter N" heading. With no paths, the built-in corpus:
  Jane Austen's six novels (Project Gutenberg, public domain), one document per chapter.
- :class:`TableCorpus`: ``.jsonl``/``.json``, ``.csv`` or ``.parquet`` files with a text column.
- :class:`HubCorpus`: a ``datasets`` hub name, config and split, with a text column.

Undecodable bytes in text files are replaced (U+FFFD) and counted, not a crash.

Paths may be URLs (``s3://bucket/books/*.txt``, any fsspec filesystem): they resolve as local paths
do (a folder's files, a glob's matches, sorted), are fingerprinted by their ETag and size (nothing is
read), and are copied into ``cache_dir`` (storage.fetch_file, again only when the remote file
changed) when the corpus is read, then read locally.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from electra_lit import storage
from electra_lit.errors import ConfigError

log = logging.getLogger(__name__)

DOCUMENT_MODES = ("chapter", "file", "paragraph")
TEXT_SUFFIXES = (".txt", ".txt.gz")
TABLE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}

_CHAPTER_HEADING = re.compile(r"^\s*chapter\s+([0-9]+|[ivxlc]+)\.?\s*$", re.IGNORECASE | re.MULTILINE)
# A sentence ends at . ! or ? (optionally closed by quotes, brackets or underscores) before
# whitespace and an upper-case letter or an opening quote.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)_]*\s+(?=[\"'\u201c\u2018(_]*[A-Z])")
_ABBREVIATION = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Col|Capt|Esq|Rev|Sir)\.$")
_BLANK_LINE = re.compile(r"\n\s*\n")


def builtin_corpus_dir() -> Path:
    """The folder of the gzipped Austen novels inside the installed package."""
    return Path(str(resources.files("electra_lit.assets") / "austen"))


def split_sentences(paragraph: str) -> list[str]:
    """Split a paragraph into sentences with a light rule (no abbreviation splits after Mr., Mrs., ...)."""
    pieces = [p.strip() for p in _SENTENCE_END.split(paragraph) if p.strip()]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def sentences_of(text: str) -> list[str]:
    """A document's sentences: blank-line separated blocks, their lines joined, split into sentences."""
    return [s for block in _BLANK_LINE.split(text) for s in split_sentences(" ".join(block.split()))]


File = Path | str  # a local file, or the URL of a remote one


def _resolve_files(
    paths: str | Sequence[str], suffixes: tuple[str, ...], key: str
) -> tuple[list[File], dict[str, dict[str, Any]]]:
    """The files that ``paths`` name, in order: a file, a folder's files with ``suffixes`` (sorted),
    or a glob's matching files (sorted); local paths as Paths, URLs as URLs. Also the remote
    files' listing info (size, ETag), by URL."""
    if isinstance(paths, str):
        paths = [paths]
    files: list[File] = []
    infos: dict[str, dict[str, Any]] = {}
    for entry in paths:
        if storage.is_remote(entry):
            found = _remote_files(str(entry), suffixes, key, infos)
        else:
            found = _local_files(entry, suffixes)
        if found is None:
            raise ConfigError(f"{key}: folder '{entry}' holds no {' or '.join(suffixes)} file")
        if not found:
            raise ConfigError(
                f"{key}: '{entry}' is no file or folder and matches no file; give existing files, folders or glob patterns"
            )
        files.extend(found)
    return files, infos


def _local_files(entry: str, suffixes: tuple[str, ...]) -> list[Path] | None:
    """A local entry's files; None for a folder without any of ``suffixes``."""
    path = Path(entry).expanduser()
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.name.endswith(suffixes)) or None
    if path.is_file():
        return [path]
    return sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())


def _remote_files(entry: str, suffixes: tuple[str, ...], key: str, infos: dict) -> list[str] | None:
    """:func:`_local_files` on the store (after storage.check_url: a missing bucket, refused
    credentials or an unreachable endpoint is one line naming ``key``); each file's listing info
    goes to ``infos``, for :func:`_file_digest` and the copy."""
    storage.check_url(entry, key, must_exist=False)
    fs, path = storage.filesystem(entry, key)
    fs.invalidate_cache()
    if fs.isdir(path):
        listed = [i for i in fs.ls(path, detail=True) if i["type"] == "file" and i["name"].endswith(suffixes)]
        if not listed:
            return None
    elif fs.isfile(path):
        listed = [fs.info(path)]
    else:
        listed = [i for i in fs.glob(path, detail=True).values() if i["type"] == "file"]
    urls = []
    for info in sorted(listed, key=lambda i: i["name"]):
        url = fs.unstrip_protocol(info["name"])
        infos[url] = info
        urls.append(url)
    return urls


def _name(file: File) -> str:
    return PurePosixPath(str(file)).name


def _suffix(file: File) -> str:
    return PurePosixPath(str(file)).suffix


def local_copies(files: Sequence[File], infos: dict[str, dict[str, Any]], cache_dir: str) -> list[str]:
    """``files`` as local paths: remote ones (``infos``: their listing) copied into ``cache_dir``
    first, once per version."""
    paths = []
    for file in files:
        if isinstance(file, str) and storage.is_remote(file):
            dest = storage.mirror_dir(file, cache_dir)
            storage.fetch_file(file, infos[file], dest)
            file = dest
        paths.append(str(file))
    return paths


def _file_digest(files: Sequence[File], infos: dict[str, dict[str, Any]], extra: str) -> str:
    """What tells this corpus from another: local files' names and contents, remote files' names
    and versions (ETag and size, from their listing: nothing is downloaded)."""
    digest = hashlib.sha256(extra.encode())
    for file in files:
        digest.update(_name(file).encode())
        if isinstance(file, str) and storage.is_remote(file):
            digest.update(storage.fingerprint(infos[file]).encode())
            continue
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


class Corpus:
    """Base: ``dataset()`` gives a streaming ``datasets.IterableDataset`` of rows, each one document
    (or, with chapters, several) in ``text_column``; ``documents()`` yields lists of sentences."""

    text_column = "text"
    description = "corpus"

    def dataset(self, files: Sequence[File] | None = None):
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError

    def texts(self, row: dict) -> list[str]:
        """The document texts of one row (one, unless the corpus splits rows further)."""
        if self.text_column not in row:
            raise ConfigError(f"{self.description}: no column {self.text_column!r}; the columns are: {', '.join(row)}")
        text = row[self.text_column]
        return [text] if isinstance(text, str) and text.strip() else []

    def documents(self, dataset=None) -> Iterator[list[str]]:
        """Each document as a list of sentences; counts undecodable bytes replaced on the way."""
        replaced = 0
        for row in dataset if dataset is not None else self.dataset():
            for text in self.texts(row):
                replaced += text.count("\ufffd")
                sentences = sentences_of(text)
                if sentences:
                    yield sentences
        if replaced:
            log.warning("%s: %d undecodable bytes were replaced by U+FFFD", self.description, replaced)

    def check(self) -> None:
        """Fail now, naming the source, if it is empty or lacks the text column."""
        try:
            first = next(iter(self.dataset()))
        except StopIteration:
            raise ConfigError(f"{self.description}: the corpus is empty") from None
        self.texts(first)


class TextCorpus(Corpus):
    """Text files (``.txt`` or ``.txt.gz``).

    Args:
        paths: files, folders (their ``*.txt`` / ``*.txt.gz`` files) or glob patterns; ``None``
            is the built-in Austen corpus.
        document: where a document ends. ``file``: one per file; ``paragraph``: one per
            blank-line separated block; ``chapter``: at each "Chapter N" heading line (text before
            a file's first heading is dropped; a file with no heading is one document).
        cache_dir: where files at URLs (``s3://...``) are copied before they are read.
    """

    def __init__(
        self,
        paths: str | Sequence[str] | None = None,
        document: str = "chapter",
        cache_dir: str = storage.DEFAULT_CACHE_DIR,
    ):
        if document not in DOCUMENT_MODES:
            raise ConfigError(f"data.corpus.document={document!r} is not one of {', '.join(DOCUMENT_MODES)}")
        self.document, self.cache_dir = document, cache_dir
        if paths is None:
            self.files, self.remote_info = sorted(builtin_corpus_dir().glob("*.txt.gz")), {}
            self.description = "the built-in corpus"
        else:
            self.files, self.remote_info = _resolve_files(paths, TEXT_SUFFIXES, "data.corpus.paths")
            self.description = f"data.corpus.paths ({len(self.files)} file(s) from {paths})"

    def dataset(self, files: Sequence[File] | None = None):
        import datasets

        return datasets.load_dataset(
            "text",
            data_files=local_copies(files or self.files, self.remote_info, self.cache_dir),
            split="train",
            streaming=True,
            sample_by="paragraph" if self.document == "paragraph" else "document",
            encoding_errors="replace",
        )

    def texts(self, row: dict) -> list[str]:
        text = row["text"]
        if self.document != "chapter" or not _CHAPTER_HEADING.search(text):
            return [text] if text.strip() else []
        return [chapter for chapter in _CHAPTER_HEADING.split(text)[2::2] if chapter.strip()]

    def fingerprint(self) -> str:
        """A digest of the files' contents and the document mode, for caches derived from the corpus."""
        return _file_digest(self.files, self.remote_info, self.document)


class TableCorpus(Corpus):
    """``.jsonl``/``.json``, ``.csv`` or ``.parquet`` files (one kind), a document per row in
    ``text_column``; files at URLs are copied into ``cache_dir`` before they are read."""

    def __init__(
        self, paths: str | Sequence[str], text_column: str = "text", cache_dir: str = storage.DEFAULT_CACHE_DIR
    ):
        self.files, self.remote_info = _resolve_files(paths, tuple(TABLE_BUILDERS), "data.corpus.paths")
        self.cache_dir = cache_dir
        kinds = {TABLE_BUILDERS[_suffix(f)] for f in self.files if _suffix(f) in TABLE_BUILDERS}
        if len(kinds) != 1 or any(_suffix(f) not in TABLE_BUILDERS for f in self.files):
            raise ConfigError(f"data.corpus.paths: give files of one kind, .jsonl/.json, .csv or .parquet; got {paths}")
        self.builder = kinds.pop()
        self.text_column = text_column
        self.description = f"data.corpus.paths ({len(self.files)} {self.builder} file(s) from {paths})"

    def dataset(self, files: Sequence[File] | None = None):
        import datasets

        data_files = local_copies(files or self.files, self.remote_info, self.cache_dir)
        return datasets.load_dataset(self.builder, data_files=data_files, split="train", streaming=True)

    def fingerprint(self) -> str:
        return _file_digest(self.files, self.remote_info, self.text_column)


class HubCorpus(Corpus):
    """A ``datasets`` hub dataset, streamed: ``path`` (e.g. ``Skylion007/openwebtext``), ``name``
    (its config), ``split``, ``text_column``."""

    def __init__(self, path: str, name: str | None = None, split: str = "train", text_column: str = "text"):
        self.path, self.name, self.split, self.text_column = path, name, split, text_column
        self.files = []
        self.description = f"data.corpus: {path}" + (f" ({name})" if name else "") + f", split {split}"

    def dataset(self, files: Sequence[Path] | None = None):
        import datasets

        try:
            return datasets.load_dataset(self.path, self.name, split=self.split, streaming=True)
        except Exception as err:  # offline, no such dataset, config or split
            raise ConfigError(f"{self.description} could not be opened ({type(err).__name__}: {err})"[:500]) from None

    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.path}/{self.name}/{self.split}/{self.text_column}".encode()).hexdigest()[:16]
