"""Read-only lookups in a breach corpus file, through one shared ``mmap``.

Every worker process maps the same file read-only, so the kernel's page cache holds one copy
for all of them; a process's own memory cost is its page tables and a few objects. On open the
mapping is advised ``MADV_RANDOM`` (a lookup reads one page of each tier: read-around would
only evict useful pages and slow a cold lookup down) and the resident tier (index and blocks)
is read ahead (``POSIX_FADV_WILLNEED``, see ``_advise``).

Opening checks the header checksum, the file size against the header (catches truncation) and
the index digest (the index bounds every search). The rest and blocks digests cover gigabytes,
so they are checked only by :meth:`BreachCorpus.verify`, which the importer runs before it
installs a file and ``sekisho breach stats --verify`` runs on demand. A corrupted body gives
wrong answers or, if it sends a lookup out of range, ``CorpusChecksumError``: never another
exception on the login path.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
import sys
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, overload

from sekisho.auth.breach.errors import (
    CorpusChecksumError,
    CorpusError,
    CorpusTruncatedError,
)
from sekisho.auth.breach.format import (
    DECODED_COUNTS,
    DIGEST_SIZE,
    HEADER_SIZE,
    MAGIC,
    SUB_BITS,
    TAG_BITS,
    CorpusInfo,
    unpack_header,
)

_READ_BLOCK = 16 << 20
_WILLNEED_CHUNK = 128 << 10  # the smallest read-ahead window Linux allows
_NATIVE_LE = sys.byteorder == "little"
_CAST_CODES: dict[int, Literal["B", "H", "I", "Q"]] = {1: "B", 2: "H", 4: "I", 8: "Q"}


class _LittleEndianArray(Sequence[int]):
    """Fallback view of little-endian unsigned ints for big-endian hosts (slower, same API)."""

    def __init__(self, buf: memoryview, width: int) -> None:
        self._buf = buf
        self._unpack = struct.Struct("<" + _CAST_CODES[width]).unpack_from
        self._width = width
        self._len = len(buf) // width

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[int]: ...
    def __getitem__(self, i: int | slice) -> int | Sequence[int]:
        if isinstance(i, slice):
            raise TypeError("slicing is not supported")
        value: int = self._unpack(self._buf, i * self._width)[0]
        return value


def _uint_view(buf: memoryview, width: int) -> Sequence[int]:
    if _NATIVE_LE and struct.calcsize(_CAST_CODES[width]) == width:
        return buf.cast(_CAST_CODES[width])
    return _LittleEndianArray(buf, width)


def _digest(fd: int, offset: int, size: int) -> bytes:
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    end = offset + size
    while offset < end:
        block = os.pread(fd, min(_READ_BLOCK, end - offset), offset)
        if not block:
            break
        h.update(block)
        offset += len(block)
    return h.digest()


def _read_header(fd: int, source: str) -> CorpusInfo:
    head = os.pread(fd, HEADER_SIZE, 0)
    if len(head) < HEADER_SIZE and head[: len(MAGIC)] == MAGIC:
        raise CorpusTruncatedError(f"{source}: truncated corpus (header is incomplete)")
    info = unpack_header(head, source=source)
    size = os.fstat(fd).st_size
    if size != info.layout.file_size:
        raise CorpusTruncatedError(
            f"{source}: corpus is {size} bytes but its header says {info.layout.file_size}"
            " (truncated or incompletely copied); re-run the import"
        )
    return info


class BreachCorpus:
    """An open corpus file. Lookups are thread-safe; ``close()`` must not race with them.

    Passwords are hashed as given: NFC normalisation (PW-04) is the caller's job, done once
    before hashing, verifying and checking a password, so all three see the same string.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        source = str(self.path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise CorpusError(f"{source}: cannot open corpus: {exc.strerror}") from exc
        if hasattr(os, "posix_fadvise"):  # no read-ahead behind the header read either
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)
        try:
            self.info = _read_header(self._fd, source)
            st = os.fstat(self._fd)
            self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            self._mmap = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
        except BaseException:
            os.close(self._fd)
            raise
        self._advise()
        self._map_sections()

    def _map_sections(self) -> None:
        lay = self.info.layout
        self._views: list[memoryview] = [memoryview(self._mmap)]
        # Read with pread, not through the mapping: that reads in large requests.
        if _digest(self._fd, lay.index_offset, lay.index_size) != self.info.index_digest:
            self.close()
            raise CorpusChecksumError(f"{self.path}: index section checksum mismatch (corrupted)")
        self._index = self._uints(self._section(lay.index_offset, lay.index_size), 8)
        self._rest = self._uints(self._section(lay.rest_offset, lay.rest_size), 4)
        self._blocks = self._section(lay.blocks_offset, lay.blocks_size)
        # Shifts turn the 160-bit digest into the fingerprint and its parts.
        self._shift = 160 - lay.fingerprint_bits
        self._key_shift = TAG_BITS + lay.rest_bits  # fingerprint >> this = bucket, sub-bucket
        self._rest_bits = lay.rest_bits
        self._rest_mask = (1 << lay.rest_bits) - 1

    def _advise(self) -> None:
        """No read-around anywhere; read the resident tier ahead now.

        A lookup touches one page of each tier. Read-around on a fault reads the device's
        read-ahead window instead (8 MB on the benchmark machine: a fully cold lookup took
        12-15 ms instead of 0.1 ms), so the whole mapping is MADV_RANDOM. WILLNEED ignores
        that advice but reads at most one read-ahead window per request (at least 128 KB),
        so the resident tier is requested in 128 KB pieces: ~20,000 calls for 2.4 GB,
        ~85 ms when it is cached already, ~1 s of I/O submission when it is not.
        """
        lay = self.info.layout
        if hasattr(self._mmap, "madvise"):
            with contextlib.suppress(OSError):  # advice only; a kernel may refuse it
                self._mmap.madvise(mmap.MADV_RANDOM)
        if hasattr(os, "posix_fadvise"):
            end = lay.file_size
            for start in range(lay.index_offset, end, _WILLNEED_CHUNK):
                size = min(_WILLNEED_CHUNK, end - start)
                os.posix_fadvise(self._fd, start, size, os.POSIX_FADV_WILLNEED)

    def _section(self, offset: int, size: int) -> memoryview:
        view = self._views[0][offset : offset + size]
        self._views.append(view)
        return view

    def _uints(self, raw: memoryview, width: int) -> Sequence[int]:
        view = _uint_view(raw, width)
        if isinstance(view, memoryview):
            self._views.append(view)
        return view

    @property
    def count(self) -> int:
        """Number of distinct fingerprints stored."""
        return self.info.layout.count

    def lookup_sha1(self, digest: bytes) -> int | None:
        """The HIBP count (a lower bound, exact below 16) of a SHA-1 digest, or None.

        Raises CorpusChecksumError if a corrupted file sends the lookup out of range.
        """
        if len(digest) != 20:
            raise ValueError("a SHA-1 digest is 20 bytes")
        fingerprint = int.from_bytes(digest, "big") >> self._shift
        key = fingerprint >> self._key_shift
        bucket, sub = key >> SUB_BITS, key & 15
        blocks = self._blocks
        try:
            head = (bucket << SUB_BITS) + self._index[bucket]  # the bucket's block
            start = head + 16 + sum(blocks[head : head + sub])  # tags of the sub-bucket
            end = start + blocks[head + sub]
            tag = (fingerprint >> self._rest_bits) & 255
            i = bisect_left(blocks, tag, start, end)
            if i == end or blocks[i] != tag:
                return None  # the resident tier rules it out: the rest is not read
            skew = (bucket + 1) << SUB_BITS  # record r's tag is at skew + r
            rest = fingerprint & self._rest_mask
            while True:
                word = self._rest[i - skew]
                if word >> 8 == rest:
                    return DECODED_COUNTS[word & 255]
                i += 1
                if i == end or blocks[i] != tag:
                    return None
        except (IndexError, OverflowError):
            raise self._corrupted() from None

    def passes_resident_tier(self, digest: bytes) -> bool:
        """Whether a lookup of ``digest`` would read the disk tier (a stored record shares
        its bucket, sub-bucket and tag). For tests and the benchmark."""
        fingerprint = int.from_bytes(digest, "big") >> self._shift
        key = fingerprint >> self._key_shift
        bucket, sub = key >> SUB_BITS, key & 15
        blocks = self._blocks
        try:
            head = (bucket << SUB_BITS) + self._index[bucket]
            start = head + 16 + sum(blocks[head : head + sub])
            end = start + blocks[head + sub]
            tag = (fingerprint >> self._rest_bits) & 255
            i = bisect_left(blocks, tag, start, end)
            return i < end and blocks[i] == tag
        except (IndexError, OverflowError):
            raise self._corrupted() from None

    def _corrupted(self) -> CorpusChecksumError:
        return CorpusChecksumError(
            f"{self.path}: a lookup read out of range: the file is corrupted"
            " (check it with sekisho breach stats --verify)"
        )

    def lookup_password(self, password: str) -> int | None:
        """``lookup_sha1`` of the UTF-8 password; normalise (NFC) before calling."""
        return self.lookup_sha1(hashlib.sha1(password.encode(), usedforsecurity=False).digest())

    def contains_password(self, password: str) -> bool:
        return self.lookup_password(password) is not None

    def verify(self) -> None:
        """Check every section digest: reads the whole file. Raises CorpusChecksumError."""
        lay, info = self.info.layout, self.info
        sections = (
            ("rest", lay.rest_offset, lay.rest_size, info.rest_digest),
            ("index", lay.index_offset, lay.index_size, info.index_digest),
            ("blocks", lay.blocks_offset, lay.blocks_size, info.blocks_digest),
        )
        for name, offset, size, expected in sections:
            if _digest(self._fd, offset, size) != expected:
                raise CorpusChecksumError(
                    f"{self.path}: {name} section checksum mismatch: the file is corrupted"
                )

    def close(self) -> None:
        """Unmap the file. Idempotent; lookups after this raise ValueError."""
        if self._fd < 0:
            return
        # The mapping can close only once no view of it is left.
        for view in reversed(self._views):
            view.release()
        self._mmap.close()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> BreachCorpus:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"BreachCorpus({str(self.path)!r}, count={self.count})"
