"""Synthetic HIBP downloader output for the breach corpus tests.

Data comes from a seeded ``random.Random`` so a failure reproduces; digests are random 20-byte
strings (as good as SHA-1 outputs for the format), counts are heavy-tailed like HIBP's.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterable
from pathlib import Path

import pytest

from sekisho.auth.breach import decode_count, encode_count

Entries = dict[bytes, int]


class HibpData:
    """Builders for the three input shapes the importer reads."""

    def entries(self, n: int, *, seed: int = 1) -> Entries:
        rng = random.Random(seed)
        return {rng.randbytes(20): int(1 / (1 - rng.random()) ** 1.5) for _ in range(n)}

    def non_members(self, n: int, members: Iterable[bytes], *, seed: int = 2) -> list[bytes]:
        rng = random.Random(seed)
        known = set(members)
        return [d for d in (rng.randbytes(20) for _ in range(n)) if d not in known]

    def expected(self, count: int) -> int:
        """What a lookup returns for a stored HIBP count."""
        return decode_count(encode_count(count))

    def lines(
        self, entries: Entries, *, crlf: bool = False, lower: bool = False, shuffle: bool = False
    ) -> bytes:
        items = list(entries.items())
        if shuffle:
            random.Random(3).shuffle(items)
        else:
            items.sort()
        eol = b"\r\n" if crlf else b"\n"
        text = b"".join(b"%s:%d%s" % (d.hex().upper().encode(), c, eol) for d, c in items)
        return text.lower() if lower else text

    def write_file(self, path: Path, entries: Entries, *, gz: bool = False, **kw: bool) -> Path:
        data = self.lines(entries, **kw)
        path.write_bytes(gzip.compress(data) if gz else data)
        return path

    def write_ranges(self, directory: Path, entries: Entries, *, gz_every: int = 0) -> Path:
        """One ``XXXXX.txt`` per prefix (CRLF, like the API); every gz_every-th one gzipped."""
        directory.mkdir(parents=True, exist_ok=True)
        by_prefix: dict[str, list[tuple[str, int]]] = {}
        for digest, count in entries.items():
            text = digest.hex().upper()
            by_prefix.setdefault(text[:5], []).append((text[5:], count))
        for i, (prefix, items) in enumerate(sorted(by_prefix.items())):
            data = b"".join(b"%s:%d\r\n" % (s.encode(), c) for s, c in sorted(items))
            if gz_every and i % gz_every == 0:
                (directory / f"{prefix}.txt.gz").write_bytes(gzip.compress(data))
            else:
                (directory / f"{prefix}.txt").write_bytes(data)
        return directory


@pytest.fixture
def hibp() -> HibpData:
    return HibpData()
