"""One breach check over the configured sources (PW-08a, PW-10..PW-12).

:class:`BreachChecker` implements ``auth.policy.BreachCheck``. Sources are asked in order:
the offline corpus (when ``breach.mode`` has one), then the range API (``online``, ``both``).
The first that lists the password at least ``min_count`` times decides. When a source cannot
answer, the ``on_unavailable`` hook files an event (at most once a minute per source, with
the number of failures in between) and a log line is written each time. When *no* source
could answer, the verdict is ``unavailable``; ``fail_closed`` then says whether a password
being set must be refused: ``breach.fail = "closed"``, or the account is in
``breach.fail_closed_groups`` (PW-11).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from sekisho.auth.breach.errors import CorpusError
from sekisho.auth.breach.holder import CorpusHolder
from sekisho.auth.breach.online import RangeClient, RangeUnavailable
from sekisho.auth.common_passwords import common_passwords
from sekisho.auth.policy import BreachVerdict, PasswordPolicy
from sekisho.config import Settings
from sekisho.config.breach import BreachSettings

__all__ = ["BreachChecker", "OfflineSource", "UnavailableHook", "build_policy"]

log = logging.getLogger("sekisho.auth.breach")

# (source, why, failures since the last call) -> None; files the audit event.
UnavailableHook = Callable[[str, str, int], Awaitable[None]]
EVENT_INTERVAL = 60.0


class OfflineSource:
    """The corpus at ``path`` through a :class:`CorpusHolder` (which reloads on a swap).

    ``required``: the file must be usable at :meth:`open` (``offline``/``both`` modes). Not
    required (``auto``): a missing file means "no offline source yet"; the path is looked at
    again every ``check_interval`` seconds. A file that is there but unusable (corrupted,
    truncated, holding no hashes) is an error in both cases.
    """

    name = "offline"

    def __init__(
        self, path: str | Path, *, required: bool, check_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.required = required
        self._interval = check_interval
        self._clock = clock
        self._holder: CorpusHolder | None = None
        self._retry_at = 0.0

    def open(self) -> None:
        """Load the corpus now. Raises CorpusError naming the path and what is wrong."""
        if self._holder is not None:
            return
        if not self.required and not self.path.exists():
            log.info("breach corpus %s not found: no offline breach check until one is "
                     "imported (sekisho breach import)", self.path)
            self._retry_at = self._clock() + self._interval
            return
        holder = CorpusHolder(self.path, check_interval=self._interval, clock=self._clock)
        if holder.corpus.count == 0:
            holder.close()
            raise CorpusError(f"{self.path}: the corpus holds no hashes; import the HIBP "
                              "data with `sekisho breach import`")
        self._holder = holder
        log.info("breach corpus %s loaded (%d hashes)", self.path, holder.corpus.count)

    def present(self) -> bool:
        """Whether this source takes part now: always when required or loaded; otherwise
        when the file has appeared (looked for at most every ``check_interval``)."""
        if self._holder is not None or self.required:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._interval
        return self.path.exists()

    def lookup(self, password: str) -> int:
        """Times the (NFC) password was seen, 0 if not listed. Raises CorpusError."""
        if self._holder is None:
            self.open()
            if self._holder is None:
                return 0
        return self._holder.lookup_password(password) or 0

    def close(self) -> None:
        holder, self._holder = self._holder, None
        if holder is not None:
            holder.close()


class BreachChecker:
    def __init__(
        self,
        settings: BreachSettings,
        *,
        offline: OfflineSource | None = None,
        online: RangeClient | None = None,
        on_unavailable: UnavailableHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.offline = offline
        self.online = online
        self.on_unavailable = on_unavailable
        self._clock = clock
        self._fail_closed_groups = frozenset(settings.fail_closed_groups)
        self._reported: dict[str, tuple[float, int]] = {}

    @classmethod
    def from_settings(
        cls, settings: BreachSettings, *, on_unavailable: UnavailableHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> BreachChecker:
        mode = settings.mode
        offline = online = None
        if mode in ("auto", "offline", "both"):
            offline = OfflineSource(settings.corpus_path, required=mode != "auto",
                                    check_interval=settings.reload_interval, clock=clock)
        if mode in ("online", "both"):
            online = RangeClient(settings.api_url, timeout=settings.timeout,
                                 cache_size=settings.cache_size, cache_ttl=settings.cache_ttl,
                                 clock=clock)
        return cls(settings, offline=offline, online=online, on_unavailable=on_unavailable,
                   clock=clock)

    @property
    def sources(self) -> tuple[str, ...]:
        return (("offline",) if self.offline else ()) + (("online",) if self.online else ())

    async def start(self) -> None:
        """Open the corpus (CorpusError stops the start-up) and the HTTP client."""
        common_passwords()  # load the common list now rather than in the first request
        if self.offline is not None:
            self.offline.open()
        if self.online is not None:
            await self.online.start()

    async def close(self) -> None:
        if self.online is not None:
            await self.online.close()
        if self.offline is not None:
            self.offline.close()

    async def check(self, password: str, *, groups: Sequence[str] = ()) -> BreachVerdict:
        """The verdict on the NFC-normalised ``password`` for an account in ``groups``."""
        answered, failed, seen = False, False, 0
        if self.offline is not None and self.offline.present():
            try:
                seen = self.offline.lookup(password)
                answered = True
            except CorpusError as exc:
                failed = True
                await self._unavailable("offline", str(exc))
            if seen >= self.settings.min_count:
                return BreachVerdict(breached=True, count=seen, source="offline")
        if self.online is not None:
            try:
                seen = max(seen, await self.online.lookup_password(password) or 0)
                answered = True
            except RangeUnavailable as exc:
                failed = True
                await self._unavailable("online", str(exc))
            if seen >= self.settings.min_count:
                return BreachVerdict(breached=True, count=seen, source="online")
        if answered or not failed:
            return BreachVerdict(count=seen)
        return BreachVerdict(unavailable=True, fail_closed=self.fails_closed(groups))

    def fails_closed(self, groups: Sequence[str]) -> bool:
        return self.settings.fail == "closed" or not self._fail_closed_groups.isdisjoint(groups)

    async def _unavailable(self, source: str, why: str) -> None:
        # Never the password, the hash or the prefix: ``why`` is built without them.
        name = "hibp_unavailable" if source == "online" else "breach_corpus_unavailable"
        log.warning("breach check: %s source unavailable: %s", source, why,
                    extra={"event": name, "source": source})
        now = self._clock()
        last, missed = self._reported.get(source, (float("-inf"), 0))
        if now - last < EVENT_INTERVAL:
            self._reported[source] = (last, missed + 1)
            return
        self._reported[source] = (now, 0)
        if self.on_unavailable is None:
            return
        try:
            await self.on_unavailable(source, why, missed)
        except Exception:  # the event is best effort; the check's answer matters more
            log.exception("breach check: could not record the unavailable event")


def build_policy(settings: Settings, checker: BreachChecker | None) -> PasswordPolicy:
    """The policy for new passwords: length, context, the common list, the breach check."""
    return PasswordPolicy(settings.passwords, breach=checker, common=common_passwords())
