"""Stream sorted fingerprints into a new corpus file, then install it atomically.

The file is written beside the target (same filesystem, so ``os.replace`` is atomic) under a
hidden temporary name. Remainders go straight to their section; counts go to an anonymous
temporary file and are appended at the end, because the count of records, and so the offset of
the counts section, is known only then. The index (a few MB) is built in memory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import tempfile
from array import array
from binascii import unhexlify
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from itertools import accumulate, islice, repeat
from operator import add, lt
from pathlib import Path

from sekisho.auth.breach.format import DIGEST_SIZE, CorpusInfo, Layout, now, pack_header

_COPY_BLOCK = 16 << 20
if array("I").itemsize != 4 or array("Q").itemsize != 8:
    raise ImportError("sekisho.auth.breach needs 4-byte 'I' and 8-byte 'Q' arrays")


class InputNotSorted(Exception):
    """Internal: the input is not in hash order, so the importer must sort it first."""


def _dedup(fps: list[bytes], codes: bytes) -> tuple[list[bytes], bytes]:
    """Merge equal neighbours (keeping the larger count); raise if the order goes back."""
    out_fps: list[bytes] = []
    out_codes = bytearray()
    for fp, code in zip(fps, codes, strict=True):
        if out_fps and fp <= out_fps[-1]:
            if fp < out_fps[-1]:
                raise InputNotSorted
            out_codes[-1] = max(out_codes[-1], code)
            continue
        out_fps.append(fp)
        out_codes.append(code)
    return out_fps, bytes(out_codes)


class CorpusWriter:
    """Accepts batches of fingerprints in non-decreasing order; see ``add``."""

    def __init__(self, target: Path, *, bucket_bits: int, remainder_bytes: int) -> None:
        self._target = target
        self._bucket_bits, self._rem_bytes = bucket_bits, remainder_bytes
        self._bucket_hex = bucket_bits // 4
        fp_hex = self._bucket_hex + 2 * remainder_bytes
        # An odd number of hex digits gets a leading "0" so unhexlify sees whole bytes.
        self._pad = b"0" if fp_hex % 2 else b""
        self._width = (fp_hex + 1) // 2
        self._index = array("Q", bytes(8 * ((1 << bucket_bits) + 1)))
        self._next_bucket = 0
        self._count = 0
        self._pending: tuple[bytes, int] | None = None
        self._rem_hash = hashlib.blake2b(digest_size=DIGEST_SIZE)
        self._codes_hash = hashlib.blake2b(digest_size=DIGEST_SIZE)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        self.tmp_path = Path(name)
        self._out = os.fdopen(fd, "w+b")
        # Both files outlive this method; finish() or abort() closes them.
        self._codes = tempfile.TemporaryFile(dir=target.parent)  # noqa: SIM115
        self._out.seek(Layout(bucket_bits, remainder_bytes, 0).rem_offset)

    @property
    def count(self) -> int:
        return self._count + (self._pending is not None)

    def add(self, fps: list[bytes], codes: bytes) -> None:
        """Append uppercase-hex fingerprints (with their count codes), merging duplicates.

        Raises InputNotSorted if a fingerprint is smaller than one already added.
        """
        if not fps:
            return
        if not all(map(lt, fps, islice(fps, 1, None))):
            fps, codes = _dedup(fps, codes)
        # The last record is held back: the next batch may start with a duplicate of it.
        if self._pending is not None:
            last_fp, last_code = self._pending
            if fps[0] < last_fp:
                raise InputNotSorted
            if fps[0] == last_fp:
                codes = bytes([max(last_code, codes[0])]) + codes[1:]
            else:
                fps = [last_fp, *fps]
                codes = bytes([last_code]) + codes
        self._pending = (fps[-1], codes[-1])
        self._emit(fps[:-1], codes[:-1])

    def _emit(self, fps: list[bytes], codes: bytes) -> None:
        if not fps:
            return
        blob = unhexlify(self._pad.join([b"", *fps]) if self._pad else b"".join(fps))
        self._fill_index(blob)
        # The remainder is the last rem_bytes of each record; store it little-endian.
        width, rem_bytes = self._width, self._rem_bytes
        rems = bytearray(len(fps) * rem_bytes)
        for j in range(rem_bytes):
            rems[j::rem_bytes] = blob[width - 1 - j :: width]
        self._out.write(rems)
        self._rem_hash.update(rems)
        self._codes.write(codes)
        self._codes_hash.update(codes)
        self._count += len(fps)

    def _fill_index(self, blob: bytes) -> None:
        """Set index[b] (first record of bucket b) for every bucket up to this batch's last."""
        # The bucket is the first whole bytes of each record (the pad nibble makes it so);
        # gather them into big-endian uint32s with strided copies, all at C speed.
        width, size = self._width, (len(self._pad) + self._bucket_hex) // 2
        raw = bytearray(len(blob) // width * 4)
        for j in range(size):
            raw[4 - size + j :: 4] = blob[j::width]
        buckets = array("I", raw)
        if sys.byteorder == "little":
            buckets.byteswap()
        first, last = self._next_bucket, buckets[-1] + 1
        starts: Iterable[int]
        if (last - first) * 4 > len(buckets):
            # Dense (small corpus): count each record once rather than search per bucket.
            # The batch may begin in bucket first - 1, where the previous batch ended.
            tally = Counter(buckets)
            sizes = map(tally.get, range(first, last - 1), repeat(0))
            starts = accumulate(sizes, initial=self._count + bisect_left(buckets, first))
        else:
            found = map(bisect_left, repeat(buckets, last - first), range(first, last))
            starts = map(add, repeat(self._count), found)
        self._index[first:last] = array("Q", starts)
        self._next_bucket = last

    def finish(self) -> Path:
        """Complete the file (index, counts, header), fsync it, and return its path."""
        if self._pending is not None:
            fp, code = self._pending
            self._pending = None
            self._emit([fp], bytes([code]))
        self._index[self._next_bucket :] = array(
            "Q", [self._count] * (len(self._index) - self._next_bucket)
        )
        layout = Layout(self._bucket_bits, self._rem_bytes, self._count)
        self._out.seek(layout.codes_offset)
        self._codes.seek(0)
        shutil.copyfileobj(self._codes, self._out, _COPY_BLOCK)
        self._codes.close()
        if sys.byteorder == "big":
            self._index.byteswap()  # the format is little-endian everywhere
        index = self._index.tobytes()
        self._out.seek(layout.index_offset)
        self._out.write(index)
        index_digest = hashlib.blake2b(index, digest_size=DIGEST_SIZE).digest()
        info = CorpusInfo(
            layout, now(), index_digest, self._rem_hash.digest(), self._codes_hash.digest()
        )
        self._out.seek(0)
        self._out.write(pack_header(info))
        self._out.truncate(layout.file_size)
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        return self.tmp_path

    def install(self) -> None:
        """Atomically replace the target; readers keep their mapping of the old file."""
        try:
            mode = stat.S_IMODE(os.stat(self._target).st_mode)
        except FileNotFoundError:
            mode = 0o644  # HIBP hashes are public data; workers may run as another user
        os.chmod(self.tmp_path, mode)
        os.replace(self.tmp_path, self._target)
        dir_fd = os.open(self._target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    def abort(self) -> None:
        """Drop the temporary files; the target is untouched."""
        self._codes.close()
        self._out.close()
        self.tmp_path.unlink(missing_ok=True)
