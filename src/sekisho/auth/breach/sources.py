"""Find and read HIBP downloader output: one ``HASH:COUNT`` file, or per-prefix range files.

Inputs are read in big blocks cut at a line end; parsing (``lines.py``) works on whole blocks.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

from sekisho.auth.breach.errors import CorpusImportError, InvalidInputLine

BLOCK_BYTES = 4 << 20
_MAX_LINE = 1 << 16
_GZIP_LINE = 16
_BOM = b"\xef\xbb\xbf"
_RANGE_NAME = re.compile(r"([0-9A-Fa-f]{5})(?:\.txt)?(?:\.gz)?")


@dataclass(frozen=True)
class Source:
    """One input file. ``prefix`` is set for range files: their lines carry 35-hex suffixes."""

    path: str  # a str, not a Path: a range directory holds a million of these
    prefix: bytes | None
    gzipped: bool
    size: int


def _file_source(path: str, name: str, size: int) -> Source:
    """A file named like a range (``21BD1.txt``) holds suffixes; any other holds full hashes."""
    match = _RANGE_NAME.fullmatch(name)
    prefix = match.group(1).upper().encode() if match else None
    return Source(path, prefix, name.endswith(".gz"), size)


def collect_sources(paths: Sequence[str | os.PathLike[str]]) -> list[Source]:
    """Expand the given paths into files, range directories in prefix order."""
    if not paths:
        raise CorpusImportError("no input paths given")
    found: list[Source] = []
    for raw in paths:
        path = Path(raw)
        try:
            if path.is_dir():
                found.extend(_range_dir(path))
            else:
                found.append(_file_source(str(path), path.name, path.stat().st_size))
        except OSError as exc:
            raise CorpusImportError(f"{path}: cannot read input: {exc.strerror}") from exc
    return found


def _range_dir(path: Path) -> list[Source]:
    # Other files (a README, a partial download) are not range files and are skipped.
    with os.scandir(path) as listing:
        entries = [
            _file_source(entry.path, entry.name, entry.stat().st_size)
            for entry in listing
            if entry.is_file() and _RANGE_NAME.fullmatch(entry.name)
        ]
    if not entries:
        raise CorpusImportError(f"{path}: no range files (named like 21BD1.txt) in directory")
    entries.sort(key=lambda s: (s.prefix or b"", s.path))
    return entries


def estimate_hashes(sources: Sequence[Source]) -> int:
    """About how many hash lines ``sources`` hold, from their sizes alone.

    An upper bound for plain text (the shortest line is ``SUFFIX:1``, 38 bytes, or
    ``SHA1:1``, 43); for gzip, HIBP's hex lines take about 16-22 bytes each.
    """
    total = 0
    for source in sources:
        per_line = _GZIP_LINE if source.gzipped else 38 if source.prefix else 43
        total += source.size // per_line
    return total


class Block(NamedTuple):
    data: bytes  # whole lines, the last one ending in a newline
    first_line: int  # line number of the block's first line, from 1
    consumed: int  # bytes of the file (compressed, for gzip) read so far


def read_blocks(source: Source, *, block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    """Yield the file as blocks of whole lines; gzip is read through transparently."""
    try:
        with open(source.path, "rb") as raw:
            if source.size <= block_bytes:
                # A range file: one read and one-shot decompression beat the streaming reader.
                data = raw.read()
                chunks = iter([gzip.decompress(data) if source.gzipped else data])
                yield from _cut_lines(source, chunks, raw.tell)
            elif source.gzipped:
                with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                    yield from _cut_lines(source, _chunks(unzipped.read, block_bytes), raw.tell)
            else:
                yield from _cut_lines(source, _chunks(raw.read, block_bytes), raw.tell)
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a truncated gzip stream raises EOFError.
        raise CorpusImportError(f"{source.path}: cannot read input: {exc}") from exc


def _chunks(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    return iter(partial(read, size), b"")


def _cut_lines(source: Source, chunks: Iterator[bytes], tell: Callable[[], int]) -> Iterator[Block]:
    carry = b""
    line_number = 1
    for index, data in enumerate(chunks):
        buf = carry + data if carry else data
        if index == 0 and buf.startswith(_BOM):
            buf = buf[len(_BOM) :]
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            if len(buf) > _MAX_LINE:
                raise InvalidInputLine(source.path, line_number, "line too long")
            carry = buf
            continue
        block, carry = buf[:cut], buf[cut:]
        yield Block(block, line_number, tell())
        line_number += block.count(b"\n")
    if carry:
        yield Block(carry + b"\n", line_number, tell())
