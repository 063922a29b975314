"""Stream sorted fingerprints into a new corpus file, then install it atomically.

The file is written beside the target (same filesystem, so ``os.replace`` is atomic) under a
hidden temporary name. The rest words go straight to their section, right after the header;
the blocks go to an anonymous temporary file and are copied behind the index at the end,
because their offset depends on the record count, known only then. The index (8 bytes per
bucket, 134 MB at the default 24 bucket bits) is built in memory.

A bucket's block is its 16 sub-bucket counts followed by its tags, so a bucket is written only
once it is complete: the records of the last bucket of each batch are held back until the next
batch (or ``finish``) shows that the bucket has ended. Everything per record runs in C:
``unhexlify``, strided slice copies, and big-integer XORs that find where the bucket and the
sub-bucket change; Python-level work is per bucket, not per record.
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
from collections import Counter, deque
from itertools import accumulate, chain, islice, repeat
from operator import add, itemgetter, lt, mul, rshift, sub
from pathlib import Path
from typing import BinaryIO

from sekisho.auth.breach.errors import CorpusImportError
from sekisho.auth.breach.format import (
    DIGEST_SIZE,
    MAX_SUB_COUNT,
    SUB_BITS,
    CorpusInfo,
    Layout,
    now,
    pack_header,
)

_SUBS = 1 << SUB_BITS
_COPY_BLOCK = 16 << 20
_ZEROS = bytes(1 << 20)
_MAX_SPAN = 1 << 20  # buckets one write may span (16 MB of sub-bucket counts)
_SENTINEL = b"\xff\xff\xff\xff"  # differs from every key word (their top nibble is 0)
_KEY_MASK = b"\xff\xff\xff\xff"
_BUCKET_MASK = b"\xff\xff\xff\xf0"  # the low nibble of a key word is the sub-bucket
_NONZERO = bytes([0] + [1] * 255)
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


def _run_starts(words: bytes | bytearray, mask: bytes) -> list[int]:
    """Start of every run of equal (masked) big-endian uint32 words, then len(words) // 4.

    XOR with the words shifted by one is one big-integer operation; the changed words are
    folded to one flag byte each and ``split`` turns the flags into run lengths.
    """
    n = len(words) // 4
    changed = int.from_bytes(words, "big") ^ int.from_bytes(_SENTINEL + words[:-4], "big")
    if mask != _KEY_MASK:
        changed &= int.from_bytes(mask * n, "big")
    lanes = changed.to_bytes(4 * n, "big")
    folded = 0
    for j in range(4):
        folded |= int.from_bytes(lanes[j::4], "big")
    flags = folded.to_bytes(n, "big").translate(_NONZERO)
    lengths = map(len, islice(flags.split(b"\1"), 1, None))
    return list(accumulate(map(add, lengths, repeat(1)), initial=0))


class CorpusWriter:
    """Accepts batches of fingerprints in non-decreasing order; see ``add``."""

    def __init__(self, target: Path, *, bucket_bits: int, rest_bits: int) -> None:
        self._target = target
        self._bucket_bits, self._rest_bits = bucket_bits, rest_bits
        self._bucket_hex = bucket_bits // 4
        fp_hex = self._bucket_hex + 3 + rest_bits // 4
        # An odd number of hex digits gets a leading "0" so unhexlify sees whole bytes; then
        # the (bucket, sub-bucket) key, the tag and the rest each fill whole bytes.
        self._pad = b"0" if fp_hex % 2 else b""
        self._width = (fp_hex + 1) // 2
        self._key_bytes = (len(self._pad) + self._bucket_hex + 1) // 2
        self._rest_bytes = rest_bits // 8
        self._index = array("Q", [0]) * ((1 << bucket_bits) + 1)
        self._next_bucket = 0  # the first bucket whose block is not written yet
        self._count = 0  # records written
        self._carry: list[bytes] = []  # the last bucket seen, held back
        self._carry_codes = b""
        self._rest_hash = hashlib.blake2b(digest_size=DIGEST_SIZE)
        self._blocks_hash = hashlib.blake2b(digest_size=DIGEST_SIZE)
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        self.tmp_path = Path(name)
        self._out = os.fdopen(fd, "w+b")
        # Both files outlive this method; finish() or abort() closes them.
        self._blocks: BinaryIO = tempfile.TemporaryFile(dir=target.parent)  # noqa: SIM115
        self._out.seek(Layout(bucket_bits, rest_bits, 0).rest_offset)

    @property
    def count(self) -> int:
        return self._count + len(self._carry)

    def add(self, fps: list[bytes], codes: bytes) -> None:
        """Append uppercase-hex fingerprints (with their count codes), merging duplicates.

        Raises InputNotSorted if a fingerprint is smaller than one already added.
        """
        if not fps:
            return
        if not all(map(lt, fps, islice(fps, 1, None))):
            fps, codes = _dedup(fps, codes)
        if self._carry:
            last = self._carry[-1]
            if fps[0] < last:
                raise InputNotSorted
            if fps[0] == last:
                codes = bytes([max(self._carry_codes[-1], codes[0])]) + codes[1:]
                fps, codes = self._carry[:-1] + fps, self._carry_codes[:-1] + codes
            else:
                fps, codes = self._carry + fps, self._carry_codes + codes
        # The last bucket may continue in the next batch: hold it back.
        cut = bisect_left(fps, fps[-1][: self._bucket_hex])
        self._carry, self._carry_codes = fps[cut:], codes[cut:]
        if len(self._carry) > _SUBS * MAX_SUB_COUNT:  # then one of its sub-buckets is full
            keys = Counter(map(itemgetter(slice(0, self._bucket_hex + 1)), self._carry))
            raise _overflow(keys.most_common(1)[0][0].decode())
        self._emit(fps[:cut], codes[:cut])

    def _emit(self, fps: list[bytes], codes: bytes) -> None:
        """Write whole buckets: their rest words, index entries and blocks."""
        if not fps:
            return
        width, key_bytes = self._width, self._key_bytes
        blob = unhexlify(self._pad.join([b"", *fps]) if self._pad else b"".join(fps))
        words = bytearray(4 * len(fps))  # big-endian (bucket << 4 | sub-bucket) per record
        for j in range(key_bytes):
            words[4 - key_bytes + j :: 4] = blob[j::width]
        keys = array("I", words)
        if sys.byteorder == "little":
            keys.byteswap()
        starts = _run_starts(words, _BUCKET_MASK)  # where each bucket's records start
        buckets = list(map(rshift, map(keys.__getitem__, starts[:-1]), repeat(SUB_BITS)))
        if buckets[-1] - buckets[0] >= _MAX_SPAN and len(buckets) > 1:
            # A sparse corpus: split, so the counts buffer below stays small.
            half = starts[len(buckets) // 2]
            self._emit(fps[:half], codes[:half])
            self._emit(fps[half:], codes[half:])
            return
        self._write_blocks(blob[key_bytes::width], words, keys, starts, buckets)
        self._fill_index(starts, buckets)
        rest = bytearray(4 * len(fps))  # uint32 LE: count code, then the rest, low byte first
        rest[0::4] = codes
        for j in range(self._rest_bytes):
            rest[1 + j :: 4] = blob[width - 1 - j :: width]
        self._out.write(rest)
        self._rest_hash.update(rest)
        self._count += len(fps)
        self._next_bucket = buckets[-1] + 1

    def _write_blocks(
        self,
        tags: bytes,
        words: bytearray,
        keys: array[int],
        starts: list[int],
        buckets: list[int],
    ) -> None:
        first = buckets[0]
        self._write_zeros(_SUBS * (first - self._next_bucket))  # empty buckets before
        # Sub-bucket counts of buckets first..last (empty ones stay 0), one run per key.
        runs = _run_starts(words, _KEY_MASK)
        sizes = list(map(sub, islice(runs, 1, None), runs))
        run_keys = list(map(keys.__getitem__, runs[:-1]))
        counts = bytearray(_SUBS * (buckets[-1] - first + 1))
        try:
            deque(map(counts.__setitem__, map(sub, run_keys, repeat(first << 4)), sizes), 0)
        except ValueError:
            worst = max(range(len(sizes)), key=sizes.__getitem__)
            raise _overflow(f"{run_keys[worst]:0{self._bucket_hex + 1}X}") from None
        # Block of each non-empty bucket, preceded by the counts of the empty ones before it.
        ends = list(map(mul, map(sub, buckets, repeat(first - 1)), repeat(_SUBS)))
        heads = map(bytes(counts).__getitem__, map(slice, [0, *ends[:-1]], ends))
        bodies = map(tags.__getitem__, map(slice, starts[:-1], islice(starts, 1, None)))
        block = b"".join(chain.from_iterable(zip(heads, bodies, strict=True)))
        self._blocks.write(block)
        self._blocks_hash.update(block)

    def _fill_index(self, starts: list[int], buckets: list[int]) -> None:
        """index[b] for every bucket up to the last one written (empty ones included)."""
        first = buckets[0]
        self._index[self._next_bucket : first] = array("Q", [self._count]) * (
            first - self._next_bucket
        )
        repeats = map(sub, buckets, [first - 1, *buckets[:-1]])
        firsts = map(add, starts[:-1], repeat(self._count))
        self._index[first : buckets[-1] + 1] = array(
            "Q", chain.from_iterable(map(repeat, firsts, repeats))
        )

    def _write_zeros(self, size: int) -> None:
        while size > 0:
            chunk = _ZEROS[: min(size, len(_ZEROS))]
            self._blocks.write(chunk)
            self._blocks_hash.update(chunk)
            size -= len(chunk)

    def finish(self) -> Path:
        """Complete the file (index, blocks, header), fsync it, and return its path."""
        self._emit(self._carry, self._carry_codes)
        self._carry, self._carry_codes = [], b""
        buckets = len(self._index) - 1
        self._write_zeros(_SUBS * (buckets - self._next_bucket))
        self._index[self._next_bucket :] = array("Q", [self._count]) * (
            len(self._index) - self._next_bucket
        )
        layout = Layout(self._bucket_bits, self._rest_bits, self._count)
        if sys.byteorder == "big":
            self._index.byteswap()  # the format is little-endian everywhere
        self._out.seek(layout.index_offset)
        self._out.write(self._index)
        index_digest = hashlib.blake2b(self._index, digest_size=DIGEST_SIZE).digest()
        del self._index  # 134 MB at the default geometry; not needed any more
        self._out.flush()
        self._blocks.flush()
        _copy(self._blocks, self._out, layout.blocks_offset, layout.blocks_size)
        self._blocks.close()
        info = CorpusInfo(
            layout,
            now(),
            self._rest_hash.digest(),
            index_digest,
            self._blocks_hash.digest(),
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
        self._blocks.close()
        self._out.close()
        self.tmp_path.unlink(missing_ok=True)


def _overflow(key: str) -> CorpusImportError:
    return CorpusImportError(
        f"sub-bucket {key[:-1]}:{key[-1]} holds more than {MAX_SUB_COUNT} distinct hashes;"
        " the input does not look like uniformly distributed SHA-1 hashes"
        " (or is too large for this bucket_bits)"
    )


def _copy(src: BinaryIO, dst: BinaryIO, offset: int, size: int) -> None:
    """Copy ``size`` bytes from the start of ``src`` to ``offset`` in ``dst`` (in the kernel
    where it can)."""
    done, src_fd, dst_fd = 0, src.fileno(), dst.fileno()
    try:
        while done < size:
            copied = os.copy_file_range(src_fd, dst_fd, size - done, done, offset + done)
            if copied == 0:
                break
            done += copied
    except OSError:
        pass  # not supported here (filesystem, kernel): copy through user space
    if done < size:
        src.seek(done)
        dst.seek(offset + done)
        shutil.copyfileobj(src, dst, _COPY_BLOCK)
