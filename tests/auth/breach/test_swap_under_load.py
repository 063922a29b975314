"""A corpus replaced (atomically, as the importer does) while checks keep running."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path

from tests.auth.breach.corpora import build_corpus

from sekisho.auth.breach.checker import BreachChecker, OfflineSource
from sekisho.config.breach import BreachSettings

FIRST = "tangerine orbit quietly 77"
SECOND = "marmalade canyon softly 12"
SWAPS = 40


async def test_answers_flip_with_the_file_and_no_check_fails(tmp_path: Path) -> None:
    """PW-11 offline mirror: ``os.replace`` under a hammering asyncio loop. Every check
    answers (no error); both states are observed; after the last swap the answer matches."""
    a = build_corpus(tmp_path / "a.sekisho", {FIRST: 7})
    b = build_corpus(tmp_path / "b.sekisho", {SECOND: 9})
    live = tmp_path / "pwned.sekisho"
    shutil.copy(a, live)
    # check_interval 0: the holder stats the file at every lookup, the harshest case.
    source = OfflineSource(live, required=True, check_interval=0.0)
    check = BreachChecker(BreachSettings(mode="offline"), offline=source)
    await check.start()
    done = threading.Event()
    errors: list[BaseException] = []

    def swapper() -> None:
        try:
            for i in range(SWAPS):
                staged = tmp_path / f".staged-{i}"
                shutil.copy(b if i % 2 == 0 else a, staged)
                os.replace(staged, live)
                done.wait(0.005)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            done.set()

    seen: dict[str, set[bool]] = {FIRST: set(), SECOND: set()}

    async def hammer(password: str) -> None:
        while not done.is_set():
            seen[password].add((await check.check(password)).breached)
            await asyncio.sleep(0)

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        await asyncio.gather(*(hammer(p) for p in (FIRST, SECOND, FIRST, SECOND)))
    finally:
        thread.join()
    assert errors == []
    assert seen[FIRST] == {True, False} and seen[SECOND] == {True, False}
    # SWAPS is even: the last copy installed was ``a``.
    assert (await check.check(FIRST)).breached
    assert not (await check.check(SECOND)).breached
    await check.close()
