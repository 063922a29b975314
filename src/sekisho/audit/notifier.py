"""The user notifier: security notices e-mailed to every notification address (AU-06).

It subscribes to the :class:`~sekisho.audit.log.Auditor` (``auditor.subscribe(
notifier.on_audit)``), so each audited change notifies wherever it happens — portal, admin
API, CLI — with no page code involved. ``notify_events`` says which events; ``notify_messages``
what the mail says; ``notify_mail`` how it leaves.

- **Never on the request's path.** ``on_audit``/``notify`` only append to a bounded queue
  (full: the new notice is dropped with a log line); a task started with the app's lifespan
  looks the user up, renders and sends.
- **One message per user per burst**, to all of the user's addresses (``notify_addresses``):
  the worker waits ``settle`` seconds after a first notice, so what one request files (a
  recovery code used and the locks it lifted) goes out together.
- **Retries** after ``retry_backoff``, doubling, ``retries`` times; none after a permanent
  refusal (SMTP 5xx). Then the notice is given up with a log line.
- **Logs name the user id, never an address** (personal data) nor a message's content.
- **close()** sends what is queued at once and gives pending retries one last try, within
  ``close_timeout``; whatever is left is logged as lost.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sekisho.audit.alerter import Clock, MonotonicClock
from sekisho.audit.events import AuditEvent
from sekisho.audit.notify_events import notice_for
from sekisho.audit.notify_mail import MailTransport, NotifyDeliveryError, smtp_transport
from sekisho.audit.notify_messages import Notice, device_of, render
from sekisho.config import Settings
from sekisho.config.notifications import is_mailbox
from sekisho.errors import StoreError
from sekisho.store.audit_log import StoredAuditEvent
from sekisho.store.users import User

__all__ = ["NotifierStats", "UserLookup", "UserNotifier"]

log = logging.getLogger("sekisho.notifications")


class UserLookup(Protocol):
    async def get(self, user_id: int) -> User | None: ...


@dataclass(frozen=True, slots=True)
class NotifierStats:
    """Volume counters (AU-05). Counts are notices unless they say messages."""

    queued: int  # accepted
    dropped: int  # refused: queue full, or after close
    messages_sent: int
    sent: int
    failures: int  # failed send attempts (messages)
    given_up: int  # after the last retry, a permanent refusal, or at close
    no_address: int  # the user has no address Sekisho can send to
    unknown_user: int
    pending: int


_COUNTS = ("queued", "dropped", "messages_sent", "sent", "failures", "given_up", "no_address",
           "unknown_user")


@dataclass(order=True)
class _Mail:
    due: float
    order: int
    user_id: int = field(compare=False)
    notices: list[Notice] = field(compare=False)
    user: User | None = field(default=None, compare=False)
    attempts: int = field(default=0, compare=False)


class UserNotifier:
    def __init__(
        self, *, transport: MailTransport | None, users: UserLookup, sender: str = "",
        contact: str = "", portal_url: str = "", subject_prefix: str = "[Sekisho]",
        max_pending: int = 1000, retries: int = 4, retry_backoff: float = 30.0,
        settle: float = 1.0, close_timeout: float = 10.0, clock: Clock | None = None,
    ) -> None:
        if min(max_pending, retry_backoff, close_timeout) <= 0 or min(retries, settle) < 0:
            raise ValueError("max_pending, retry_backoff, close_timeout must be > 0; "
                             "retries, settle >= 0")
        self._transport = transport
        self._users = users
        self._sender, self._contact = sender, contact
        self._portal_url, self._prefix = portal_url, subject_prefix
        self._max_pending, self._retries, self._backoff = max_pending, retries, retry_backoff
        self._settle, self._close_timeout = settle, close_timeout
        self._clock: Clock = clock or MonotonicClock()
        self._incoming: deque[tuple[Notice, User | None]] = deque()
        self._ready: deque[_Mail] = deque()
        self._later: list[_Mail] = []  # a heap by due time
        self._order = itertools.count()
        self._pending = 0
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._counts = dict.fromkeys(_COUNTS, 0)

    @classmethod
    def from_settings(cls, settings: Settings, *, users: UserLookup,
                      clock: Clock | None = None) -> UserNotifier:
        """Built from ``[notifications]``; off (sends nothing) when it resolves to off.
        Raises ConfigError naming the key of an unreadable password or CA file."""
        plan = settings.notification_plan()
        if plan is None:
            return cls(transport=None, users=users, clock=clock)
        return cls(transport=smtp_transport(plan), users=users, sender=plan.sender,
                   contact=plan.contact, portal_url=plan.portal_url,
                   subject_prefix=plan.subject_prefix, max_pending=plan.max_pending,
                   retries=plan.retries, retry_backoff=plan.retry_backoff, clock=clock)

    @property
    def enabled(self) -> bool:
        return self._transport is not None

    def on_audit(self, event: AuditEvent, stored: StoredAuditEvent | None) -> None:
        """The Auditor subscriber: queue the notice ``event`` calls for, if any."""
        if self._transport is not None:
            notice = notice_for(event, stored)
            if notice is not None:
                self._enqueue(notice, None)

    def notify(
        self, *, user: User, event: str, details: Mapping[str, str | int | bool] | None = None,
        client_ip: str | None = None, when: datetime | None = None,
        user_agent: str | None = None, reference: str | None = None,
    ) -> bool:
        """Queue a notice of kind ``event`` (``notify_messages.KINDS``) for ``user``; whether
        it was queued. Raises ValueError for an unknown kind or a fact a notice cannot carry."""
        notice = Notice(kind=event, user_id=user.id, when=when or datetime.now(UTC),
                        client_ip=client_ip, device=device_of(user_agent),
                        facts=dict(details or {}), reference=reference)
        return self._transport is not None and self._enqueue(notice, user)

    def _enqueue(self, notice: Notice, user: User | None) -> bool:
        if self._closed or self._pending >= self._max_pending:
            self._counts["dropped"] += 1
            log.error("notifications: %s; dropped a %s notice for user %d",
                      "closed" if self._closed else f"{self._pending} pending (queue full)",
                      notice.kind, notice.user_id)
            return False
        self._incoming.append((notice, user))
        self._pending += 1
        self._counts["queued"] += 1
        self._wake.set()
        return True

    def stats(self) -> NotifierStats:
        return NotifierStats(**{**self._counts, "pending": self._pending})

    async def start(self) -> None:
        if self._task is None and not self._closed and self._transport is not None:
            self._task = asyncio.create_task(self._run(), name="sekisho-notifications")

    async def close(self) -> None:
        """Send what is queued, give retries a last try (within ``close_timeout``), stop."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._task is None and self._pending:
            self._task = asyncio.create_task(self._run())  # never started: flush anyway
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=self._close_timeout)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._pending:
            log.error("notifications: %d notice(s) not sent at close", self._pending)
            self._counts["given_up"] += self._pending
            self._pending = 0

    async def __aenter__(self) -> UserNotifier:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the worker -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if self._incoming:
                if self._settle and not self._stop.is_set():
                    await self._pause(self._settle, self._stop)
                self._collect()
            mail = self._take()
            if mail is not None:
                try:
                    await self._attempt(mail)
                except Exception as exc:  # a bug here must not end notifications for good
                    log.error("notifications: sending failed: %s", type(exc).__name__)
                    self._finish(mail, "given_up")
                continue
            if self._stop.is_set() and not self._incoming:
                return
            self._wake.clear()
            wait = self._later[0].due - self._clock.now() if self._later else None
            await self._pause(wait, self._wake)

    async def _pause(self, seconds: float | None, event: asyncio.Event) -> None:
        """Until ``event`` is set or ``seconds`` pass (None: no time limit)."""
        waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(event.wait())}
        if seconds is not None:
            waiters.add(asyncio.ensure_future(self._clock.sleep(max(0.0, seconds))))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    def _collect(self) -> None:
        """Queued notices into messages, one per user, in arrival order."""
        mails: dict[int, _Mail] = {}
        while self._incoming:
            notice, user = self._incoming.popleft()
            mail = mails.get(notice.user_id)
            if mail is None:
                mail = mails[notice.user_id] = _Mail(
                    due=0.0, order=next(self._order), user_id=notice.user_id, notices=[],
                    user=user)
                self._ready.append(mail)
            mail.notices.append(notice)

    def _take(self) -> _Mail | None:
        if self._ready:
            return self._ready.popleft()
        if self._later and (self._stop.is_set() or self._later[0].due <= self._clock.now()):
            return heapq.heappop(self._later)
        return None

    def _finish(self, mail: _Mail, outcome: str) -> None:
        self._counts[outcome] += len(mail.notices)
        self._pending -= len(mail.notices)

    async def _attempt(self, mail: _Mail) -> None:
        try:
            user = mail.user or await self._users.get(mail.user_id)
        except StoreError:
            self._failed(mail, NotifyDeliveryError("the user store is unavailable"))
            return
        if user is None:
            self._finish(mail, "unknown_user")
            return
        mail.user = user
        addresses = [a for a in user.notify_addresses if is_mailbox(a)]
        if len(addresses) < len(user.notify_addresses):
            log.warning("notifications: user %d has an address that is not a plain mailbox; "
                        "skipped it", user.id)
        if not addresses:
            log.info("notifications: user %d has no notification address; %d notice(s) not "
                     "sent", user.id, len(mail.notices))
            self._finish(mail, "no_address")
            return
        assert self._transport is not None
        message = render(mail.notices, username=user.username, to=addresses,
                         sender=self._sender, contact=self._contact,
                         portal_url=self._portal_url, subject_prefix=self._prefix)
        try:
            refused = await self._transport.send(message, sender=self._sender,
                                                 recipients=addresses)
        except NotifyDeliveryError as exc:
            self._failed(mail, exc)
            return
        if refused:
            log.warning("notifications: %s refused %d of %d addresses of user %d",
                        self._transport.name, refused, len(addresses), user.id)
        self._counts["messages_sent"] += 1
        self._finish(mail, "sent")

    def _failed(self, mail: _Mail, exc: NotifyDeliveryError) -> None:
        self._counts["failures"] += 1
        mail.attempts += 1
        kinds = ",".join(sorted({n.kind for n in mail.notices}))
        if exc.permanent or mail.attempts > self._retries or self._stop.is_set():
            log.error("notifications: gave up on %s for user %d after %d attempt(s): %s",
                      kinds, mail.user_id, mail.attempts, exc)
            self._finish(mail, "given_up")
            return
        delay = self._backoff * 2 ** (mail.attempts - 1)
        mail.due = self._clock.now() + delay
        heapq.heappush(self._later, mail)
        log.warning("notifications: %s for user %d failed (%s); retry %d of %d in %gs",
                    kinds, mail.user_id, exc, mail.attempts, self._retries, delay)
