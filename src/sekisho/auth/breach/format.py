"""The on-disk corpus format: layout, header, count codes, false-positive rate.

A corpus stores, for every breached SHA-1, a fingerprint: its top ``bucket_bits +
8 * remainder_bytes`` bits (52 by default). The top ``bucket_bits`` select a bucket; only the
``remainder_bytes`` below them are stored, sorted, so a bucket is a short sorted array.

::

    offset 0        header, 4096 bytes (struct below, then zeros)
    index_offset    (2**bucket_bits + 1) uint64 LE: index[b] = first record of bucket b,
                    index[2**bucket_bits] = count
    rem_offset      count * remainder_bytes, unsigned LE: the remainders, sorted per bucket
    codes_offset    count bytes: the HIBP count of each record as a 1-byte code (encode_count)

Sections start on 4096-byte boundaries so the remainders can be viewed as a native array.
Each section has a BLAKE2b-256 digest in the header; the header has its own BLAKE2b-128.
"""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass

from sekisho.auth.breach.errors import CorpusFormatError

MAGIC = b"SKSHBRCH"
VERSION = 1
HASH_SHA1 = 1
HEADER_SIZE = 4096
ALIGN = 4096
DIGEST_SIZE = 32
DEFAULT_BUCKET_BITS = 20  # one bucket per HIBP range prefix (5 hex digits)
DEFAULT_REMAINDER_BYTES = 4
BUCKET_BITS_CHOICES = (8, 12, 16, 20, 24)  # whole hex digits, so buckets split on text
REMAINDER_BYTES_CHOICES = (1, 2, 4, 8)  # widths a memoryview can be cast to

_FIELDS = struct.Struct("<8sHBBBB2xQQQQQQ32s32s32s")
_HEADER_DIGEST_SIZE = 16


def encode_count(count: int) -> int:
    """A 1-byte code for an HIBP count: exact below 16, then 3 mantissa bits (within 12.5%).

    0 means "padding line" and is never stored; counts beyond ~1.6e10 share code 255.
    """
    if count < 8:
        return max(count, 0)
    exponent = count.bit_length() - 4
    return min(((exponent + 1) << 3) | ((count >> exponent) - 8), 255)


def decode_count(code: int) -> int:
    """The smallest count that encodes to ``code``: a lower bound of the true count."""
    if code < 8:
        return code
    return (8 + (code & 7)) << ((code >> 3) - 1)


DECODED_COUNTS: tuple[int, ...] = tuple(decode_count(code) for code in range(256))


def false_positive_rate(count: int, fingerprint_bits: int) -> float:
    """Chance that a random non-member matches: count distinct fingerprints out of 2**bits."""
    return count / float(2**fingerprint_bits)


def _align(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


@dataclass(frozen=True)
class Layout:
    """Where each section lives, derived from the parameters and the record count."""

    bucket_bits: int
    remainder_bytes: int
    count: int

    @property
    def fingerprint_bits(self) -> int:
        return self.bucket_bits + 8 * self.remainder_bytes

    @property
    def index_offset(self) -> int:
        return HEADER_SIZE

    @property
    def index_size(self) -> int:
        return ((1 << self.bucket_bits) + 1) * 8

    @property
    def rem_offset(self) -> int:
        return _align(self.index_offset + self.index_size)

    @property
    def rem_size(self) -> int:
        return self.count * self.remainder_bytes

    @property
    def codes_offset(self) -> int:
        return _align(self.rem_offset + self.rem_size)

    @property
    def file_size(self) -> int:
        return self.codes_offset + self.count


def check_parameters(*, bucket_bits: int, remainder_bytes: int) -> None:
    if bucket_bits not in BUCKET_BITS_CHOICES:
        raise ValueError(f"bucket_bits must be one of {BUCKET_BITS_CHOICES}")
    if remainder_bytes not in REMAINDER_BYTES_CHOICES:
        raise ValueError(f"remainder_bytes must be one of {REMAINDER_BYTES_CHOICES}")


@dataclass(frozen=True)
class CorpusInfo:
    """What the header of a corpus file says."""

    layout: Layout
    created: int  # Unix time of the import
    index_digest: bytes
    rem_digest: bytes
    codes_digest: bytes

    @property
    def count(self) -> int:
        return self.layout.count

    @property
    def false_positive_rate(self) -> float:
        return false_positive_rate(self.layout.count, self.layout.fingerprint_bits)


def pack_header(info: CorpusInfo) -> bytes:
    lay = info.layout
    fields = _FIELDS.pack(
        MAGIC,
        VERSION,
        HASH_SHA1,
        lay.bucket_bits,
        lay.remainder_bytes,
        1,
        lay.count,
        info.created,
        lay.index_offset,
        lay.rem_offset,
        lay.codes_offset,
        lay.file_size,
        info.index_digest,
        info.rem_digest,
        info.codes_digest,
    )
    digest = hashlib.blake2b(fields, digest_size=_HEADER_DIGEST_SIZE).digest()
    return (fields + digest).ljust(HEADER_SIZE, b"\0")


def unpack_header(raw: bytes, *, source: str) -> CorpusInfo:
    """Parse and check a header; ``source`` names the file in error messages."""
    end = _FIELDS.size
    if len(raw) < end + _HEADER_DIGEST_SIZE or raw[:8] != MAGIC:
        raise CorpusFormatError(f"{source}: not a Sekisho breach corpus (bad magic bytes)")
    (
        _,
        version,
        hash_kind,
        bucket_bits,
        remainder_bytes,
        count_bytes,
        count,
        created,
        index_offset,
        rem_offset,
        codes_offset,
        file_size,
        index_digest,
        rem_digest,
        codes_digest,
    ) = _FIELDS.unpack_from(raw)
    if version != VERSION:
        raise CorpusFormatError(f"{source}: unsupported corpus format version {version}")
    expected = hashlib.blake2b(raw[:end], digest_size=_HEADER_DIGEST_SIZE).digest()
    if raw[end : end + _HEADER_DIGEST_SIZE] != expected:
        raise CorpusFormatError(f"{source}: corrupted header (header checksum mismatch)")
    if hash_kind != HASH_SHA1 or count_bytes != 1:
        raise CorpusFormatError(f"{source}: unsupported hash kind {hash_kind}")
    try:
        check_parameters(bucket_bits=bucket_bits, remainder_bytes=remainder_bytes)
    except ValueError as exc:
        raise CorpusFormatError(f"{source}: {exc}") from exc
    layout = Layout(bucket_bits, remainder_bytes, count)
    recorded = (index_offset, rem_offset, codes_offset, file_size)
    if recorded != (layout.index_offset, layout.rem_offset, layout.codes_offset, layout.file_size):
        raise CorpusFormatError(f"{source}: section offsets disagree with the header")
    return CorpusInfo(layout, created, index_digest, rem_digest, codes_digest)


def now() -> int:
    return int(time.time())
