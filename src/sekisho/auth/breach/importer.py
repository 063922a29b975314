"""Build a corpus from HIBP downloader output (``sekisho breach import``).

The downloader writes hashes in order, both as one file and as range files taken in prefix
order, so the import first assumes sorted input and streams it straight into the corpus
(memory: one input block plus the index). If the order ever goes back, the partial file is
dropped and the input is read again through a bounded-memory external sort.

The new file is written beside the target, fsynced, verified end to end, and only then moved
over the target with ``os.replace``. On any error the temporary files are removed and the
previous corpus stays in place.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sekisho.auth.breach.corpus import BreachCorpus
from sekisho.auth.breach.errors import CorpusError, CorpusImportError
from sekisho.auth.breach.extsort import BATCH, DEFAULT_RUN_RECORDS, RunSorter
from sekisho.auth.breach.format import (
    DEFAULT_REST_BITS,
    SUB_BITS,
    TAG_BITS,
    Layout,
    bucket_bits_for,
    check_parameters,
    false_positive_rate,
)
from sekisho.auth.breach.lines import LineFormat, parse_block
from sekisho.auth.breach.sources import (
    BLOCK_BYTES,
    Source,
    collect_sources,
    estimate_hashes,
    read_blocks,
)
from sekisho.auth.breach.writer import CorpusWriter, InputNotSorted

ProgressCallback = Callable[[int, int], None]
Sink = Callable[[list[bytes], bytes], None]
_PROGRESS_STEP = 1 << 20


@dataclass(frozen=True)
class ImportResult:
    path: Path
    count: int  # distinct fingerprints stored
    lines: int  # hash lines read, padding included
    padding_lines: int  # ':0' lines skipped
    duplicates: int  # lines merged into an earlier fingerprint
    sorted_input: bool  # False when the external sort was needed
    runs: int  # external sort runs written to disk
    file_size: int
    seconds: float
    fingerprint_bits: int
    resident_bits: int  # bucket, sub-bucket and tag: what the resident tier holds
    resident_bytes: int  # index and blocks: what should stay in the page cache

    @property
    def false_positive_rate(self) -> float:
        return false_positive_rate(self.count, self.fingerprint_bits)

    @property
    def resident_pass_rate(self) -> float:
        """Share of random non-members that get past the resident tier to the disk tier."""
        return false_positive_rate(self.count, self.resident_bits)


class _Progress:
    """Reports (done, total) in input bytes; a second pass extends the total."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self._callback = callback
        self.total = total
        self._base = 0
        self._reported = -_PROGRESS_STEP
        self.done = 0

    def at(self, done_in_pass: int) -> None:
        self.done = self._base + done_in_pass
        if self._callback and (
            self.done - self._reported >= _PROGRESS_STEP or self.done >= self.total
        ):
            self._reported = self.done
            self._callback(self.done, self.total)

    def new_pass(self, size: int) -> None:
        self._base = self.done
        self.total = self.done + size


@dataclass
class _Counts:
    lines: int = 0
    padding: int = 0


def import_corpus(
    paths: Sequence[str | os.PathLike[str]],
    target: str | os.PathLike[str],
    *,
    bucket_bits: int | None = None,
    rest_bits: int = DEFAULT_REST_BITS,
    on_progress: ProgressCallback | None = None,
    run_records: int = DEFAULT_RUN_RECORDS,
    tmp_dir: str | os.PathLike[str] | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> ImportResult:
    """Import ``paths`` (files, range directories, gzip) into the corpus file ``target``.

    ``bucket_bits`` and ``rest_bits`` set the geometry (docs/breach-corpus.md). By default
    the bucket bits follow the input's size (``bucket_bits_for``): 24 for the full HIBP
    corpus, fewer for a small one so that its resident tier stays proportional to it.
    ``tmp_dir`` holds external-sort runs (default: beside the target; 9 bytes per hash when
    the input is unsorted). Raises CorpusImportError (InvalidInputLine for a bad line); the
    previous ``target`` is then left untouched.
    """
    if bucket_bits is not None:
        check_parameters(bucket_bits=bucket_bits, rest_bits=rest_bits)
    target = Path(target)
    if target.is_dir():
        raise CorpusImportError(f"{target}: the corpus path is a directory")
    sources = collect_sources(paths)
    if bucket_bits is None:
        bucket_bits = bucket_bits_for(estimate_hashes(sources))
    check_parameters(bucket_bits=bucket_bits, rest_bits=rest_bits)
    started = time.monotonic()
    progress = _Progress(on_progress, sum(s.size for s in sources))
    build = _Build(sources, target, bucket_bits, rest_bits, block_bytes, progress)
    sorter: RunSorter | None = None
    try:
        counts = build.run(None)
    except InputNotSorted:
        progress.new_pass(2 * progress.total)  # read again, then merge
        run_dir = Path(tmp_dir) if tmp_dir else target.parent
        sorter = RunSorter(fp_hex=build.fp_hex, run_records=run_records, tmp_dir=run_dir)
        counts = build.run(sorter)
    return build.result(counts, sorter, time.monotonic() - started)


class _Build:
    """One attempt at building the corpus: straight from the input, or through a sorter."""

    def __init__(
        self,
        sources: list[Source],
        target: Path,
        bucket_bits: int,
        rest_bits: int,
        block_bytes: int,
        progress: _Progress,
    ) -> None:
        self._sources, self._target = sources, target
        self._bucket_bits, self._rest_bits = bucket_bits, rest_bits
        self._block_bytes, self._progress = block_bytes, progress
        self._input_size = sum(source.size for source in sources)
        self.fp_hex = (bucket_bits + SUB_BITS + TAG_BITS + rest_bits) // 4
        self.count = 0

    def run(self, sorter: RunSorter | None) -> _Counts:
        try:
            writer = CorpusWriter(
                self._target, bucket_bits=self._bucket_bits, rest_bits=self._rest_bits
            )
        except OSError as exc:
            raise CorpusImportError(f"{self._target}: cannot create: {exc.strerror}") from exc
        try:
            counts = self._read_all(sorter.add if sorter else writer.add)
            if sorter is not None:
                self._drain(sorter, writer)
            self.count = writer.count
            with BreachCorpus(writer.finish()) as written:
                written.verify()
            writer.install()
        except BaseException as exc:
            writer.abort()
            if isinstance(exc, CorpusError):
                raise CorpusImportError(f"the written corpus failed verification: {exc}") from exc
            if isinstance(exc, OSError):  # a full disk, most likely
                raise CorpusImportError(f"{self._target}: write failed: {exc}") from exc
            raise
        finally:
            if sorter is not None:
                sorter.close()
        return counts

    def result(self, counts: _Counts, sorter: RunSorter | None, seconds: float) -> ImportResult:
        layout = Layout(self._bucket_bits, self._rest_bits, self.count)
        return ImportResult(
            path=self._target,
            count=self.count,
            lines=counts.lines,
            padding_lines=counts.padding,
            duplicates=counts.lines - counts.padding - self.count,
            sorted_input=sorter is None,
            runs=sorter.runs_written if sorter else 0,
            file_size=self._target.stat().st_size,
            seconds=seconds,
            fingerprint_bits=layout.fingerprint_bits,
            resident_bits=layout.resident_bits,
            resident_bytes=layout.resident_bytes,
        )

    def _read_all(self, sink: Sink) -> _Counts:
        counts = _Counts()
        fps: list[bytes] = []
        codes = bytearray()
        before = 0
        for source in self._sources:
            fmt = LineFormat.for_source(source.prefix, self.fp_hex)
            for block in read_blocks(source, block_bytes=self._block_bytes):
                parsed = parse_block(block.data, fmt, path=source.path, first_line=block.first_line)
                counts.lines += len(parsed.fingerprints) + parsed.padding
                counts.padding += parsed.padding
                fps += parsed.fingerprints
                codes += parsed.codes
                if len(fps) >= BATCH:
                    sink(fps, bytes(codes))
                    fps, codes = [], bytearray()
                self._progress.at(before + block.consumed)
            before += source.size
        sink(fps, bytes(codes))
        return counts

    def _drain(self, sorter: RunSorter, writer: CorpusWriter) -> None:
        # The merge is reported as a second pass over the input, in proportion to records.
        size, merged = self._input_size, 0
        for fps, codes in sorter.batches():
            writer.add(fps, codes)
            merged += len(fps)
            self._progress.at(size + size * merged // max(sorter.total, 1))
