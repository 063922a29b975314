"""Where audit events go: a JSON line on the ``sekisho.audit`` logger, and the SQL chain.

**The line.** One event, one line: the event's JSON object (``AuditEvent.to_dict``) plus,
when it was chained, its ``seq`` and ``hash``, encoded with ``ensure_ascii=True``. CR, LF,
U+2028 and every other control or non-ASCII character inside a value is written as a ``\\u``
or ``\\n`` escape, so text a client chose (a username, a user agent) can never begin a line
of its own (AU-04). Route the logger to a file or a shipper with a ``%(message)s`` format to
get pure JSON lines; the ``seq``/``hash`` pairs there anchor the chain's head outside the
database (audit.chain explains why that matters).

**The chain.** :class:`Auditor` appends every event to the SQL chain except those in
:data:`LOG_ONLY`: the ones an unauthenticated client can produce as fast as it can send
requests (failed logins, throttle hits, CSRF and probing noise). Chained, a flood of them
would queue every replica on the append lock and grow the table at the attacker's pace; the
log line records each of them, ``login_failures_hourly`` counts them, and the lockout
record sums up the ones that led to a lock. Admin actions, lockouts, successful logins,
factor and session lifecycle events are always chained.

**Subscribers.** :meth:`Auditor.subscribe` adds a callback run after each event is written
(chained or log-only, and also when the chain append failed: the event still happened). The
user notifier (``audit.notifier``) is one: it queues and returns, so the request that filed
the event never waits for mail. A callback that raises is logged by name and skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection

from sekisho.audit.chain import GENESIS, Verifier, VerifyResult, canonical_json, link_hash
from sekisho.audit.events import AuditEvent
from sekisho.errors import StoreError
from sekisho.store.audit_log import AuditLog, StoredAuditEvent
from sekisho.store.db import Database

__all__ = ["AUDIT_LOGGER", "LOG_ONLY", "AuditLineWriter", "Auditor", "Subscriber", "audit_log",
           "json_line"]

AUDIT_LOGGER = "sekisho.audit"
LOG_ONLY = frozenset({
    "authn_login_fail", "excess_rate_limit_exceeded", "malicious_csrf",
    "malicious_excess_404", "authz_fail",
})
_LEVELS = {"INFO": logging.INFO, "WARN": logging.WARNING, "CRITICAL": logging.CRITICAL}
#: ``callback(event, stored)``: ``stored`` is the chain record, None for a log-only event or
#: a failed append. Must not block (it runs on the request's path) and should not raise.
Subscriber = Callable[[AuditEvent, StoredAuditEvent | None], None]
_log = logging.getLogger("sekisho.audit.subscribers")


def audit_log(db: Database) -> AuditLog:
    """The SQL audit table with this package's chain rules."""
    return AuditLog(db, link_hash=link_hash, genesis=GENESIS)


def json_line(event: AuditEvent, *, seq: int | None = None, hash: str | None = None) -> str:
    data = event.to_dict()
    if seq is not None:
        data["seq"], data["hash"] = seq, hash
    return json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


class AuditLineWriter:
    """Writes :func:`json_line` to a logger (``sekisho.audit`` unless given)."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)

    def write(self, event: AuditEvent, *, seq: int | None = None, hash: str | None = None) -> str:
        line = json_line(event, seq=seq, hash=hash)
        self._logger.log(_LEVELS.get(event.level or "INFO", logging.INFO), line)
        return line


class Auditor:
    """The one call the rest of Sekisho makes: ``await auditor.record(event)``."""

    def __init__(
        self, *, store: AuditLog | None = None, writer: AuditLineWriter | None = None,
        log_only: Collection[str] = LOG_ONLY,
    ) -> None:
        self._store = store
        self._writer = writer or AuditLineWriter()
        self._log_only = frozenset(log_only)
        self._subscribers: list[Subscriber] = []

    @classmethod
    def for_database(
        cls, db: Database, *, writer: AuditLineWriter | None = None,
        log_only: Collection[str] = LOG_ONLY,
    ) -> Auditor:
        return cls(store=audit_log(db), writer=writer, log_only=log_only)

    def chained(self, event: AuditEvent) -> bool:
        return self._store is not None and event.base not in self._log_only

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(event, stored)`` after every event from now on (see above)."""
        self._subscribers.append(callback)

    async def record(self, event: AuditEvent) -> StoredAuditEvent | None:
        """Write the log line and, unless the event is log-only, chain it in SQL. A failed
        append still writes the line (without ``seq``), then raises the StoreError."""
        if self._store is None or not self.chained(event):
            self._writer.write(event)
            self._publish(event, None)
            return None
        try:
            stored = await self._store.append(
                ts=event.timestamp, event=event.event, body=canonical_json(event.to_dict()))
        except StoreError:
            self._writer.write(event)
            self._publish(event, None)
            raise
        self._writer.write(event, seq=stored.seq, hash=stored.hash)
        self._publish(event, stored)
        return stored

    def _publish(self, event: AuditEvent, stored: StoredAuditEvent | None) -> None:
        for callback in self._subscribers:
            try:
                callback(event, stored)
            except Exception as exc:  # a subscriber's bug must not fail the audited action
                _log.error("audit subscriber %s failed on %s: %s",
                           getattr(callback, "__qualname__", "?"), event.base,
                           type(exc).__name__)

    async def verify(self) -> VerifyResult:
        """Check the whole SQL chain (an auditor without a store has nothing to check)."""
        if self._store is None:
            return Verifier().result()
        return (await self._store.verify(Verifier())).result()
