"""The on-disk corpus format (version 2): layout, header, count codes, false-positive rates.

A corpus stores, for every breached SHA-1, a 60-bit *fingerprint*: the top 15 hex digits,
split on hex-digit boundaries into a bucket (6 digits), a sub-bucket (1), a tag (2) and a
rest (6). Records are sorted by fingerprint; each is split into two tiers:

* the *resident tier* (index and blocks, ~1.2 bytes per hash): enough to reject almost every
  non-member; it is what must stay in the page cache;
* the *disk tier* (rest, 4 bytes per hash): read only for members and for the few
  non-members (``n / 2**36``) whose bucket, sub-bucket and tag match a stored record.

::

    offset 0         header, 4096 bytes (struct below, then zeros)
    rest_offset      count * uint32 LE: (rest << 8) | count code, in record order
    index_offset     (2**bucket_bits + 1) * uint64 LE: index[b] = first record of bucket b,
                     index[2**bucket_bits] = count
    blocks_offset    per bucket b in order: 16 uint8 sub-bucket counts, then one tag byte per
                     record of b. Bucket b's block starts at 16*b + index[b]; the tag of
                     record i (in bucket b) is at 16*(b + 1) + i.

The resident tier is one contiguous range at the end of the file. Sections start on 4096-byte
boundaries; each has a BLAKE2b-256 digest in the header, which has its own BLAKE2b-128.
"""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass

from sekisho.auth.breach.errors import CorpusFormatError

MAGIC = b"SKSHBRCH"
VERSION = 2
HASH_SHA1 = 1
HEADER_SIZE = 4096
ALIGN = 4096
DIGEST_SIZE = 32
SUB_BITS = 4  # one hex digit: 16 sub-buckets per bucket
TAG_BITS = 8  # two hex digits: one byte per record in the resident tier
COUNT_BITS = 8  # the count code, the low byte of a rest word
MAX_SUB_COUNT = 255  # sub-bucket counts are one byte each
DEFAULT_BUCKET_BITS = 24  # the full HIBP corpus; see bucket_bits_for
DEFAULT_REST_BITS = 24
MAX_MEAN_BUCKET = 256  # records a bucket holds on average at most, when the import chooses
BUCKET_BITS_CHOICES = (8, 12, 16, 20, 24)  # whole hex digits, so buckets split on text
REST_BITS_CHOICES = (0, 8, 16, 24)  # whole bytes, below the count code in a uint32

_FIELDS = struct.Struct("<8sHBBBBBBQQQQQQ32s32s32s")
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
    """Chance that a random non-member matches: count distinct fingerprints out of 2**bits.

    With ``fingerprint_bits`` set to the resident tier's bits (bucket, sub-bucket, tag) it is
    the share of random non-members that pass the resident tier and read the disk tier.
    """
    return count / float(2**fingerprint_bits)


def _align(offset: int) -> int:
    return -(-offset // ALIGN) * ALIGN


@dataclass(frozen=True)
class Layout:
    """Where each section lives, derived from the geometry and the record count."""

    bucket_bits: int
    rest_bits: int
    count: int

    @property
    def resident_bits(self) -> int:
        """Bits of a fingerprint the resident tier holds: bucket, sub-bucket, tag."""
        return self.bucket_bits + SUB_BITS + TAG_BITS

    @property
    def fingerprint_bits(self) -> int:
        return self.resident_bits + self.rest_bits

    @property
    def buckets(self) -> int:
        return 1 << self.bucket_bits

    @property
    def rest_offset(self) -> int:
        return HEADER_SIZE

    @property
    def rest_size(self) -> int:
        return self.count * 4

    @property
    def index_offset(self) -> int:
        return _align(self.rest_offset + self.rest_size)

    @property
    def index_size(self) -> int:
        return (self.buckets + 1) * 8

    @property
    def blocks_offset(self) -> int:
        return _align(self.index_offset + self.index_size)

    @property
    def blocks_size(self) -> int:
        return (1 << SUB_BITS) * self.buckets + self.count

    @property
    def file_size(self) -> int:
        return self.blocks_offset + self.blocks_size

    @property
    def resident_bytes(self) -> int:
        """The index and the blocks: what must stay in the page cache."""
        return self.file_size - self.index_offset

    @property
    def disk_tier_bytes(self) -> int:
        return self.rest_size


def bucket_bits_for(hashes: int) -> int:
    """The narrowest bucket geometry that keeps buckets at MAX_MEAN_BUCKET records on average
    or fewer: 24 bits for the full HIBP corpus (~119 a bucket at 2 billion), fewer for small
    corpora, whose resident tier then stays proportional to their size."""
    for bits in BUCKET_BITS_CHOICES:
        if hashes <= MAX_MEAN_BUCKET << bits:
            return bits
    return BUCKET_BITS_CHOICES[-1]


def check_parameters(*, bucket_bits: int, rest_bits: int) -> None:
    if bucket_bits not in BUCKET_BITS_CHOICES:
        raise ValueError(f"bucket_bits must be one of {BUCKET_BITS_CHOICES}")
    if rest_bits not in REST_BITS_CHOICES:
        raise ValueError(f"rest_bits must be one of {REST_BITS_CHOICES}")


@dataclass(frozen=True)
class CorpusInfo:
    """What the header of a corpus file says."""

    layout: Layout
    created: int  # Unix time of the import
    rest_digest: bytes
    index_digest: bytes
    blocks_digest: bytes

    @property
    def count(self) -> int:
        return self.layout.count

    @property
    def false_positive_rate(self) -> float:
        return false_positive_rate(self.layout.count, self.layout.fingerprint_bits)

    @property
    def resident_pass_rate(self) -> float:
        """Share of random non-members that get past the resident tier (read the disk tier)."""
        return false_positive_rate(self.layout.count, self.layout.resident_bits)


def pack_header(info: CorpusInfo) -> bytes:
    lay = info.layout
    fields = _FIELDS.pack(
        MAGIC,
        VERSION,
        HASH_SHA1,
        lay.bucket_bits,
        SUB_BITS,
        TAG_BITS,
        lay.rest_bits,
        COUNT_BITS,
        lay.count,
        info.created,
        lay.rest_offset,
        lay.index_offset,
        lay.blocks_offset,
        lay.file_size,
        info.rest_digest,
        info.index_digest,
        info.blocks_digest,
    )
    digest = hashlib.blake2b(fields, digest_size=_HEADER_DIGEST_SIZE).digest()
    return (fields + digest).ljust(HEADER_SIZE, b"\0")


def unpack_header(raw: bytes, *, source: str) -> CorpusInfo:
    """Parse and check a header; ``source`` names the file in error messages."""
    end = _FIELDS.size
    if len(raw) < 10 or raw[:8] != MAGIC:
        raise CorpusFormatError(f"{source}: not a Sekisho breach corpus (bad magic bytes)")
    version = int.from_bytes(raw[8:10], "little")
    if version == 1:
        raise CorpusFormatError(f"{source}: version 1 corpus: re-import with sekisho breach import")
    if version != VERSION:
        raise CorpusFormatError(f"{source}: unsupported corpus format version {version}")
    if len(raw) < end + _HEADER_DIGEST_SIZE:
        raise CorpusFormatError(f"{source}: corrupted header (too short)")
    expected = hashlib.blake2b(raw[:end], digest_size=_HEADER_DIGEST_SIZE).digest()
    if raw[end : end + _HEADER_DIGEST_SIZE] != expected:
        raise CorpusFormatError(f"{source}: corrupted header (header checksum mismatch)")
    (
        _,
        _,
        hash_kind,
        bucket_bits,
        sub_bits,
        tag_bits,
        rest_bits,
        count_bits,
        count,
        created,
        rest_offset,
        index_offset,
        blocks_offset,
        file_size,
        rest_digest,
        index_digest,
        blocks_digest,
    ) = _FIELDS.unpack_from(raw)
    if hash_kind != HASH_SHA1:
        raise CorpusFormatError(f"{source}: unsupported hash kind {hash_kind}")
    if (sub_bits, tag_bits, count_bits) != (SUB_BITS, TAG_BITS, COUNT_BITS):
        raise CorpusFormatError(f"{source}: unsupported record geometry")
    try:
        check_parameters(bucket_bits=bucket_bits, rest_bits=rest_bits)
    except ValueError as exc:
        raise CorpusFormatError(f"{source}: {exc}") from exc
    layout = Layout(bucket_bits, rest_bits, count)
    recorded = (rest_offset, index_offset, blocks_offset, file_size)
    expected_offsets = (layout.rest_offset, layout.index_offset, layout.blocks_offset)
    if recorded != (*expected_offsets, layout.file_size):
        raise CorpusFormatError(f"{source}: section offsets disagree with the header")
    return CorpusInfo(layout, created, rest_digest, index_digest, blocks_digest)


def now() -> int:
    return int(time.time())
