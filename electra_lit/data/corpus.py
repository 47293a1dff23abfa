"""Plain-text corpora read as documents of sentences.

ELECTRA's data builder never lets a sequence span two documents and splits segments A and B
at sentence boundaries, so a corpus yields documents, each a list of sentences. The built-in
corpus is Jane Austen's six novels (Project Gutenberg, public domain), shipped gzipped inside
the package, one document per chapter.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import re
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

from electra_lit.errors import ConfigError

DOCUMENT_MODES = ("chapter", "file", "paragraph")
TEXT_SUFFIXES = (".txt", ".txt.gz")

_CHAPTER_HEADING = re.compile(r"^\s*chapter\s+([0-9]+|[ivxlc]+)\.?\s*$", re.IGNORECASE)
# A sentence ends at . ! or ? (optionally closed by quotes, brackets or underscores) before
# whitespace and an upper-case letter or an opening quote.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)_]*\s+(?=[\"'\u201c\u2018(_]*[A-Z])")
_ABBREVIATION = re.compile(r"\b(Mr|Mrs|Ms|Dr|St|Col|Capt|Esq|Rev|Sir)\.$")


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


def _paragraphs(lines: Sequence[str]) -> Iterator[str]:
    """Blank-line separated blocks, each joined into one line."""
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line.strip())
        elif block:
            yield " ".join(block)
            block = []
    if block:
        yield " ".join(block)


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


class TextCorpus:
    """Documents from text files (``.txt`` or ``.txt.gz``).

    Args:
        paths: files, folders (their ``*.txt`` / ``*.txt.gz`` files) or glob patterns; ``None``
            is the built-in Austen corpus.
        document: where a document ends. ``chapter``: at each "Chapter N" heading line (text
            before a file's first heading is dropped; a file with no heading is one document);
            ``file``: one document per file; ``paragraph``: one per blank-line separated block.
    """

    def __init__(self, paths: str | Sequence[str] | None = None, document: str = "chapter"):
        if document not in DOCUMENT_MODES:
            raise ConfigError(
                f"data.corpus.document={document!r} is not one of {', '.join(DOCUMENT_MODES)}"
            )
        self.document = document
        self.files = self._resolve(paths)

    @staticmethod
    def _resolve(paths: str | Sequence[str] | None) -> list[Path]:
        if paths is None:
            return sorted(builtin_corpus_dir().glob("*.txt.gz"))
        if isinstance(paths, str):
            paths = [paths]
        files: list[Path] = []
        for entry in paths:
            path = Path(entry).expanduser()
            if path.is_dir():
                found = sorted(p for p in path.iterdir() if p.name.endswith(TEXT_SUFFIXES))
                if not found:
                    raise ConfigError(
                        f"data.corpus.paths: folder '{entry}' holds no .txt or .txt.gz file"
                    )
            elif path.is_file():
                found = [path]
            else:
                found = sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
                if not found:
                    raise ConfigError(
                        f"data.corpus.paths: '{entry}' is no file or folder and matches no file; "
                        "give existing .txt/.txt.gz files, folders or glob patterns"
                    )
            files.extend(found)
        return files

    def fingerprint(self) -> str:
        """A digest of the files' contents and the document mode, for caches derived from the corpus."""
        digest = hashlib.sha256(self.document.encode())
        for path in self.files:
            digest.update(path.name.encode())
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()[:16]

    def documents(self) -> Iterator[list[str]]:
        """Each document as a list of sentences, in file order."""
        for path in self.files:
            yield from self._file_documents(_read_lines(path))

    def _file_documents(self, lines: list[str]) -> Iterator[list[str]]:
        if self.document == "paragraph":
            for paragraph in _paragraphs(lines):
                yield split_sentences(paragraph)
            return
        if self.document == "chapter" and any(_CHAPTER_HEADING.match(l) for l in lines):
            chapters: list[list[str]] = []
            for line in lines:
                if _CHAPTER_HEADING.match(line):
                    chapters.append([])
                elif chapters:
                    chapters[-1].append(line)
        else:
            chapters = [lines]
        for chapter in chapters:
            sentences = [s for p in _paragraphs(chapter) for s in split_sentences(p)]
            if sentences:
                yield sentences
