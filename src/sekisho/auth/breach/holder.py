"""Keep serving lookups while the corpus file is replaced underneath.

The importer installs a new corpus with ``os.replace``: the path then names a new inode while
the mapping of the old one stays valid. The holder notices the new inode with one ``stat`` at
most every ``check_interval`` seconds, opens it beside the old one and swaps a single
reference. The old corpus is not closed: it is unmapped by reference counting once the last
lookup still using it returns, so a swap never interrupts a lookup.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sekisho.auth.breach.corpus import BreachCorpus
from sekisho.auth.breach.errors import CorpusError

log = logging.getLogger("sekisho.auth.breach")

_Identity = tuple[int, int, int, int]


class CorpusHolder:
    """The current corpus at ``path``, reloaded when the file is replaced.

    Raises CorpusError at construction when the file cannot be used: the operator configured
    an offline corpus and should learn at start-up that it is missing. A bad replacement is
    logged and ignored; the previous corpus keeps serving.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._check_interval = check_interval
        self._clock = clock
        self._corpus = BreachCorpus(self.path)
        self._rejected: _Identity | None = None
        self._next_check = clock() + check_interval
        self._lock = threading.Lock()

    @property
    def corpus(self) -> BreachCorpus:
        if self._clock() >= self._next_check:
            self.check()
        return self._corpus

    def lookup_sha1(self, digest: bytes) -> int | None:
        return self.corpus.lookup_sha1(digest)

    def lookup_password(self, password: str) -> int | None:
        return self.corpus.lookup_password(password)

    def contains_password(self, password: str) -> bool:
        return self.corpus.contains_password(password)

    def check(self) -> bool:
        """Reload now if the file changed; True when a new corpus was swapped in."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread is checking; keep serving the current corpus
        try:
            self._next_check = self._clock() + self._check_interval
            return self._reload_if_changed()
        finally:
            self._lock.release()

    def _reload_if_changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            log.warning(
                "breach corpus %s: cannot stat (%s); keeping the loaded one",
                self.path,
                exc.strerror,
            )
            return False
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if identity in (self._corpus.identity, self._rejected):
            return False
        try:
            fresh = BreachCorpus(self.path)
        except CorpusError as exc:
            self._rejected = identity
            log.warning("breach corpus replacement refused, keeping the loaded one: %s", exc)
            return False
        self._corpus = fresh
        log.info("breach corpus reloaded: %s (%d hashes)", self.path, fresh.count)
        return True

    def close(self) -> None:
        """Close the current corpus; call only once no lookup can run."""
        self._corpus.close()
