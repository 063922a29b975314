"""CorpusHolder: a running gateway picks up a re-imported corpus without missing a lookup."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from sekisho.auth.breach import CorpusError, CorpusHolder, import_corpus


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _import(tmp_path: Path, hibp: Any, entries: dict[bytes, int], name: str) -> None:
    source = hibp.write_file(tmp_path / f"{name}.txt", entries)
    import_corpus([source], tmp_path / "pwned.corpus", bucket_bits=12)


def test_new_file_is_picked_up_after_the_check_interval(tmp_path: Path, hibp: Any) -> None:
    old, new = hibp.entries(500, seed=1), hibp.entries(500, seed=2)
    _import(tmp_path, hibp, old, "old")
    clock = FakeClock()
    holder = CorpusHolder(tmp_path / "pwned.corpus", check_interval=30, clock=clock)
    first_old, first_new = next(iter(old)), next(iter(new))
    assert holder.lookup_sha1(first_old) is not None
    _import(tmp_path, hibp, new, "new")
    clock.now += 29
    assert holder.lookup_sha1(first_old) is not None  # not checked yet: no stat per lookup
    clock.now += 1
    assert holder.lookup_sha1(first_old) is None
    assert holder.lookup_sha1(first_new) == hibp.expected(new[first_new])
    assert holder.corpus.count == 500
    holder.close()


def test_bad_replacement_is_refused_and_the_old_corpus_keeps_serving(
    tmp_path: Path, hibp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = hibp.entries(300, seed=1), hibp.entries(300, seed=2)
    _import(tmp_path, hibp, old, "old")
    clock = FakeClock()
    holder = CorpusHolder(tmp_path / "pwned.corpus", check_interval=5, clock=clock)
    good = (tmp_path / "pwned.corpus").read_bytes()
    (tmp_path / "partial").write_bytes(good[: len(good) // 2])
    (tmp_path / "partial").replace(tmp_path / "pwned.corpus")  # an interrupted manual copy
    clock.now += 5
    with caplog.at_level(logging.WARNING, logger="sekisho.auth.breach"):
        assert holder.lookup_sha1(next(iter(old))) is not None
    assert "refused" in caplog.text
    assert "truncated" in caplog.text
    clock.now += 5
    assert not holder.check()  # the same bad file is not retried (or logged) again
    _import(tmp_path, hibp, new, "new")
    clock.now += 5
    assert holder.lookup_sha1(next(iter(new))) is not None
    holder.close()


def test_missing_file_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="cannot open"):
        CorpusHolder(tmp_path / "pwned.corpus")


def test_swapping_files_under_a_reading_thread(tmp_path: Path, hibp: Any) -> None:
    sets = [hibp.entries(2000, seed=s) for s in (11, 12)]
    probes = [next(iter(e)) for e in sets]  # each probe is in one set only
    _import(tmp_path, hibp, sets[0], "set0")
    holder = CorpusHolder(tmp_path / "pwned.corpus", check_interval=0)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: set[tuple[bool, bool]] = set()

    def reader() -> None:
        try:
            while not stop.is_set():
                corpus = holder.corpus  # one corpus per round, as a request would use it
                answer = tuple(corpus.lookup_sha1(p) is not None for p in probes)
                assert answer in {(True, False), (False, True)}, answer
                seen.add((answer[0], answer[1]))
        except BaseException as exc:  # reported to the main thread below
            errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_ in range(1, 9):
            _import(tmp_path, hibp, sets[round_ % 2], f"set{round_}")
            holder.check()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert not thread.is_alive()
    assert (
        holder.lookup_sha1(probes[0]) is not None,
        holder.lookup_sha1(probes[1]) is not None,
    ) == (True, False)  # 8 rounds end on set 0
    assert len(seen) == 2  # the reader saw both contents
    holder.close()
