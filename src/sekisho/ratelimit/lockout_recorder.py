"""From the regulator's decisions to lockout records in SQL (AD-01), and back (unlock, AD-02).

The login path passes on what the regulator said: ``after_attempt`` after ``record_attempt``,
``after_refusal`` after a ``check`` that refused.

Only failures that lead to or follow a lock touch SQL:

- the failure whose decision is ``disabled`` disabled the factor (RL-01): its record is
  opened at once, for the factor and every ``involved`` one. Its failure count is the
  regulator's ``disable_after`` (the lock falls exactly there); its addresses and user agents
  are those this process saw while the account sat in its delay phase, plus this one;
- later attempts on a locked account (refused as ``disabled``, or failures from a known
  device) are folded into the open record in batches: one write per record per
  ``flush_interval`` per process, sooner when a batch holds ``batch_values`` addresses.

Everything else stays in memory: attempts per hour (written once a minute, the admin
chart) and, for accounts in their delay phase, a small tally of where failures came from
(``max_tracked`` accounts, least recent dropped first; ``TALLY_VALUES`` per list). Each
process contributes what it saw. Device decisions never open a record: a burned device
token is not a locked account.

User id and name are looked up only when a record is opened, for known and unknown names
alike (the same query either way). A store failure is logged and never fails the login —
the lock itself lives in the regulator — and its batch is retried at the next flush. Call
:meth:`flush` at shutdown.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

from sekisho.auth.usernames import canonical_username
from sekisho.errors import InvalidUsername, NotFound, StoreError
from sekisho.ratelimit.decision import Decision
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.ratelimit.lockout_tally import (
    TALLY_VALUES,
    LockHook,
    Unlocked,
    _Batch,
    _Open,
    _when,
)
from sekisho.ratelimit.regulator import Regulator
from sekisho.store.lockouts import (
    LockoutNotActive,
    LockoutRecord,
    LockoutRepository,
    Sighting,
    validate_unlock,
)
from sekisho.store.users import UserRepository

__all__ = ["LockHook", "LockoutRecorder", "Unlocked"]

log = logging.getLogger(__name__)

_UA_LIMIT = 256
_HOURS_EVERY = 60.0
_Key = tuple[str, str]  # (account key, factor)


class LockoutRecorder:
    def __init__(
        self, repo: LockoutRepository, keys: RateLimitKeys, *, disable_after: int,
        users: UserRepository | None = None, on_lock: LockHook | None = None,
        flush_interval: float = 10.0, batch_values: int = 256, max_tracked: int = 2000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._keys = keys
        self._disable_after = disable_after
        self._users = users
        self._on_lock = on_lock
        self._interval = flush_interval
        self._batch_values = batch_values
        self._max = max_tracked
        self._clock = clock
        self._tallies: OrderedDict[_Key, _Batch] = OrderedDict()
        self._open: OrderedDict[_Key, _Open] = OrderedDict()
        self._dirty: OrderedDict[_Key, None] = OrderedDict()
        self._hours: dict[int, list[int]] = {}
        self._hours_written = clock()

    async def after_attempt(
        self, decision: Decision, *, account: str, client_ip: str, success: bool,
        factor: str = "password", involved: Collection[str] = (), user_agent: str = "",
        user_id: int | None = None, username: str | None = None,
    ) -> None:
        """Call with what ``regulator.record_attempt`` returned."""
        now, acct = self._clock(), self._keys.account(account)
        if success:
            for name in (factor, *involved):
                self._tallies.pop((acct, name), None)
            return
        self._count(now, failures=1)
        sample = self._sample(client_ip, user_agent)
        if decision.reason == "disabled" and not decision.device:
            for name in (factor, *involved):
                tally = self._tallies.pop((acct, name), None) or _Batch()
                tally.add(now, sample, cap=TALLY_VALUES)
                await self._open_record(
                    (acct, name), tally.sighting(self._disable_after), account=account,
                    user_id=user_id, username=username, sample=sample)
        elif (acct, factor) in self._open:
            await self._pend((acct, factor), now, sample, create=False)
        elif decision.reason == "delay":
            self._tally((acct, factor)).add(now, sample, cap=TALLY_VALUES)
        await self._flush_due(now)

    async def after_refusal(
        self, decision: Decision, *, account: str, client_ip: str, factor: str = "password",
        user_agent: str = "",
    ) -> None:
        """Call with a refusal from ``regulator.check`` (any reason: all are counted)."""
        now = self._clock()
        self._count(now, refused=1)
        if decision.reason == "disabled" and not decision.device:
            key, sample = (self._keys.account(account), factor), self._sample(client_ip, user_agent)
            if key in self._open:
                await self._pend(key, now, sample, create=True)
            else:  # locked before this process noticed (restart, another replica)
                batch = _Batch()
                batch.add(now, sample, cap=TALLY_VALUES)
                await self._open_record(key, batch.sighting(), account=account, sample=sample,
                                        reopen_failures=self._disable_after + 1)
        await self._flush_due(now)

    async def unlock(
        self, *, record_id: int, actor: str, reason: str, regulator: Regulator
    ) -> Unlocked:
        """Lift a lock: the regulator's disable and counters first (so a failure half-way
        leaves a record still active, to retry), then the record. Raises
        UnlockReasonRequired, NotFound, LockoutNotActive; the caller audits (AD-06)."""
        actor, reason = validate_unlock(actor=actor, reason=reason)
        before = await self._repo.get(record_id)
        if before is None:
            raise NotFound("no such lockout record")
        if before.state != "active":
            raise LockoutNotActive(f"lockout record {record_id} is {before.state}")
        key = (before.account_key, before.factor)
        self._open.pop(key, None)
        self._dirty.pop(key, None)
        await regulator.unlock_key(account_key=before.account_key, factor=before.factor)
        after = await self._repo.unlock(record_id, actor=actor, reason=reason)
        return Unlocked(before=before, after=after)

    async def flush(self) -> None:
        """Write every pending batch and the hourly counts (at shutdown)."""
        for key in list(self._dirty):
            await self._write(key)
        await self._write_hours()

    # -- internals -------------------------------------------------------------------------

    def _sample(self, client_ip: str, user_agent: str) -> tuple[str, str, str]:
        return (self._keys.ip(client_ip), self._keys.subnet(client_ip),
                user_agent[:_UA_LIMIT])

    def _tally(self, key: _Key) -> _Batch:
        tally = self._tallies.pop(key) if key in self._tallies else _Batch()
        self._tallies[key] = tally
        while len(self._tallies) > self._max:
            self._tallies.popitem(last=False)
        return tally

    def count_refused(self, count: int = 1) -> None:
        """Refusals decided before an account was known (the admission gate): the admin
        chart counts them with the others; they touch no record."""
        self._count(self._clock(), refused=count)

    def _count(self, now: float, *, failures: int = 0, refused: int = 0) -> None:
        slot = self._hours.setdefault(int(now) // 3600, [0, 0])
        slot[0] += failures
        slot[1] += refused

    async def _open_record(
        self, key: _Key, sighting: Sighting, *, account: str, sample: tuple[str, str, str],
        user_id: int | None = None, username: str | None = None,
        reopen_failures: int | None = None,
    ) -> None:
        self._open[key] = self._open.pop(key) if key in self._open else _Open()
        await self._evict()
        try:
            if reopen_failures is not None:  # count one more on an open record, if any
                if await self._repo.open_or_update(
                        account_key=key[0], factor=key[1], sighting=sighting, create=False):
                    return
                sighting = Sighting(reopen_failures, sighting.first_seen, sighting.last_seen,
                                    sighting.ips, sighting.subnets, sighting.user_agents)
            if user_id is None:
                user_id, username = await self._lookup(account)
            change = await self._repo.open_or_update(
                account_key=key[0], factor=key[1], sighting=sighting, user_id=user_id,
                username=username)
        except StoreError as exc:
            log.warning("lockout record not written (%s); retrying later", exc)
            self._keep(key, sighting)
            return
        if change is not None and change.opened and self._on_lock is not None:
            await self._hook(change.record, sample)

    def _keep(self, key: _Key, sighting: Sighting) -> None:
        batch = _Batch(sighting.failures, sighting.first_seen.timestamp(),
                       sighting.last_seen.timestamp(), dict(sighting.ips),
                       dict(sighting.subnets), dict(sighting.user_agents))
        entry = self._open.setdefault(key, _Open())
        entry.pending.merge(batch)
        entry.create = True
        if entry.dirty_since is None:
            entry.dirty_since = self._clock()
            self._dirty[key] = None

    async def _lookup(self, account: str) -> tuple[int | None, str | None]:
        if self._users is None:
            return None, None
        try:
            name = canonical_username(account)
        except InvalidUsername:
            name = ""  # no user has it; ask anyway, so that both cost one query
        user = await self._users.get_by_username(name)
        return (None, None) if user is None else (user.id, user.username)

    async def _pend(
        self, key: _Key, now: float, sample: tuple[str, str, str], *, create: bool
    ) -> None:
        entry = self._open[key]
        self._open.move_to_end(key)
        full = entry.pending.add(now, sample, cap=self._batch_values)
        entry.create = entry.create or create
        if entry.dirty_since is None:
            entry.dirty_since = now
            self._dirty[key] = None
        if full:
            await self._write(key)

    async def _flush_due(self, now: float) -> None:
        while self._dirty:
            key = next(iter(self._dirty))
            entry = self._open.get(key)
            if entry is not None and entry.dirty_since is not None and (
                    now - entry.dirty_since < self._interval):
                break
            if not await self._write(key):
                break  # the store is failing: try again with a later attempt
        if now - self._hours_written >= _HOURS_EVERY:
            await self._write_hours()

    async def _write(self, key: _Key) -> bool:
        """Write the key's pending batch; False if the store failed (the batch is kept)."""
        self._dirty.pop(key, None)
        entry = self._open.get(key)
        if entry is None or not entry.pending.failures:
            return True
        batch, create = entry.pending, entry.create
        entry.pending, entry.create, entry.dirty_since = _Batch(), False, None
        try:
            change = await self._repo.open_or_update(
                account_key=key[0], factor=key[1], sighting=batch.sighting(), create=create)
        except StoreError as exc:
            log.warning("lockout record not updated (%s); retrying later", exc)
            entry.pending.merge(batch)
            entry.create = entry.create or create
            entry.dirty_since = self._clock()
            self._dirty[key] = None
            return False
        if change is None:  # unlocked elsewhere: nothing to add to
            self._open.pop(key, None)
        elif change.opened and self._on_lock is not None:
            await self._hook(change.record, batch.most_seen())
        return True

    async def _write_hours(self) -> None:
        hours, self._hours = self._hours, {}
        self._hours_written = self._clock()
        if not hours:
            return
        try:
            await self._repo.add_hourly(
                {_when(h * 3600): (f, r) for h, (f, r) in hours.items()})
        except StoreError as exc:
            log.warning("hourly login counts not written (%s); retrying later", exc)
            for hour, (f, r) in hours.items():
                slot = self._hours.setdefault(hour, [0, 0])
                slot[0] += f
                slot[1] += r

    async def _evict(self) -> None:
        while len(self._open) > self._max:
            key = next(iter(self._open))
            await self._write(key)
            self._open.pop(key, None)

    async def _hook(self, record: LockoutRecord, sample: tuple[str, str, str]) -> None:
        assert self._on_lock is not None
        try:
            await self._on_lock(record, client_ip=sample[0], user_agent=sample[2])
        except Exception:  # a hook (audit, alert) must not fail the login
            log.exception("lockout hook failed for record %d", record.id)
