"""Turn a block of ``HASH:COUNT`` lines into fingerprints and count codes.

Per-line Python code caps an import at a few hundred thousand lines per second; 2 billion lines
would take hours. So every step here is one C-level pass over the whole block
(``bytes.translate``, ``split``, ``map`` with ``itemgetter``), and validation checks properties
that every well-formed block has (allowed characters, one colon per line and in the right
column, decimal counts). Only when a check fails is the block walked line by line, to name the
first bad line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import compress, repeat
from operator import add, itemgetter

from sekisho.auth.breach.errors import InvalidInputLine
from sekisho.auth.breach.format import encode_count

_UPPER = bytes.maketrans(b"abcdef", b"ABCDEF")
_LINE_CHARS = b"0123456789ABCDEF:\r\n"
_MAX_MEMO = 1 << 20
_DIGITS = re.compile(rb"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class _Malformed(Exception):
    pass


class _CountCodes(dict[bytes, int]):
    """Count text to 1-byte code, memoised: a few thousand distinct counts cover most lines."""

    def __missing__(self, key: bytes) -> int:
        code = encode_count(int(key))  # only [0-9A-F] reach here; int() refuses the letters
        if len(self) < _MAX_MEMO:
            self[key] = code
        return code


_CODES = _CountCodes()


@dataclass(frozen=True)
class LineFormat:
    """``hex_len`` 40 for full hashes, 35 for range-file suffixes (then ``prefix`` is set)."""

    hex_len: int
    prefix: bytes
    fp_hex: int  # hex digits of a fingerprint

    @classmethod
    def for_source(cls, prefix: bytes | None, fp_hex: int) -> LineFormat:
        return cls(40, b"", fp_hex) if prefix is None else cls(35, prefix, fp_hex)


@dataclass(frozen=True)
class Parsed:
    fingerprints: list[bytes]  # uppercase hex, fp_hex digits each, in input order
    codes: bytes  # one count code per fingerprint, never 0
    padding: int  # ':0' padding lines skipped


def parse_block(data: bytes, fmt: LineFormat, *, path: str, first_line: int) -> Parsed:
    """Parse whole lines (``data`` ends with a newline). Raises InvalidInputLine."""
    try:
        return _parse(data, fmt)
    except _Malformed:
        number, reason = _first_bad_line(data, fmt.hex_len)
        raise InvalidInputLine(path, first_line + number, reason) from None


def _parse(data: bytes, fmt: LineFormat) -> Parsed:
    text = data.translate(_UPPER)
    if text.translate(None, _LINE_CHARS):
        raise _Malformed
    # splitlines() also splits at a stray CR, so a CR inside a line fails the checks below.
    lines = text.splitlines()
    if b"" in lines:
        lines = list(filter(None, lines))
    n, h = len(lines), fmt.hex_len
    if n == 0:
        return Parsed([], b"", 0)
    # One colon per line, in column h, at least one digit after it: then the hash is pure hex.
    if text.count(b":") != n or min(map(len, lines)) < h + 2:
        raise _Malformed
    if bytes(map(itemgetter(h), lines)).count(b":") != n:
        raise _Malformed
    try:
        codes = bytes(map(_CODES.__getitem__, map(itemgetter(slice(h + 1, None)), lines)))
    except ValueError:
        raise _Malformed from None
    fps = _fingerprints(lines, fmt)
    padding = codes.count(0)
    if padding:
        fps = list(compress(fps, codes))
        codes = codes.replace(b"\0", b"")
    return Parsed(fps, codes, padding)


def _fingerprints(lines: list[bytes], fmt: LineFormat) -> list[bytes]:
    if not fmt.prefix:
        return list(map(itemgetter(slice(0, fmt.fp_hex)), lines))
    take = fmt.fp_hex - len(fmt.prefix)
    if take <= 0:
        return [fmt.prefix[: fmt.fp_hex]] * len(lines)
    return list(map(add, repeat(fmt.prefix), map(itemgetter(slice(0, take)), lines)))


def _first_bad_line(data: bytes, hex_len: int) -> tuple[int, str]:
    """(0-based line offset within the block, reason) of the first malformed line."""
    for number, line in enumerate(data.split(b"\n")):
        reason = _line_problem(line[:-1] if line.endswith(b"\r") else line, hex_len)
        if reason:
            return number, reason
    return 0, "malformed line"


def _line_problem(line: bytes, hex_len: int) -> str | None:
    if not line:
        return None
    if b"\r" in line:
        return "stray carriage return inside the line"
    digest, colon, count = line.partition(b":")
    if not colon:
        return "missing ':COUNT' after the hash"
    if len(digest) != hex_len or not _HEX.fullmatch(digest):
        return f"expected {hex_len} hex digits before ':'"
    if not _DIGITS.fullmatch(count):
        return "the count is not a decimal number"
    try:
        int(count)
    except ValueError:
        return "the count is too large"
    return None
