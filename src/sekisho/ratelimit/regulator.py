"""The regulator: one object, two verbs (``check`` before, ``record_attempt`` after).

``check`` is consulted before any password, code or signature is evaluated; a refused
attempt is never evaluated and never counted (RL-02). ``record_attempt`` is told the outcome.
The model, with every number, is in docs/lockout.md; in short:

- **Consecutive failures** per account key *and factor* (RL-01, RL-04, RL-09), in the
  :class:`FailureStore`: a growing wait, then a disable that only :meth:`Regulator.unlock`
  lifts. Success resets it (RL-03), never a disable.
- **Address budgets** (``account_ip``, ``ip``, ``subnet``, ``global_failures``) count failed
  guesses in the :class:`Limiter` (RL-05); they never lock a victim's account.
- **Attempt budgets** (``account.<factor>``) count every evaluated attempt, taken at ``check``.
- **Known devices** (device.py) have their own counter and attempt budget and skip the address
  budgets; a device that reaches ``disable_after`` is burned (``Decision.device`` is False).
- **Report-only** budgets (and ``delay_report_only``) are counted and reported, never
  enforced. Disabling is never report-only (RL-01).
- **Attack mode** (attack.py): password outcomes feed its detectors; while it is on, or for a
  flagged source, the tighter ``attack.ip``/``attack.subnet`` budgets apply too.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from sekisho.config.ratelimit import FACTORS, RateLimitSettings
from sekisho.errors import RateLimitError
from sekisho.ratelimit.attack import AttackMonitor
from sekisho.ratelimit.decision import AccountState, Decision, FactorState, Reason
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.ratelimit.limiter import Limiter
from sekisho.ratelimit.store import FailureRecord, FailureStore

__all__ = ["AccountState", "Decision", "FactorState", "Reason", "Regulator"]

log = logging.getLogger(__name__)

# Factors a guess can be made against; passkey options issuance is volume only.
_GUESSABLE = frozenset({"password", "totp", "recovery"})
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ACCOUNT_KEY = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class _Subject:
    """Whose counters an attempt lands on: the account's, or one known device's."""

    record_key: str
    budget_key: str
    record: FailureRecord
    device: str | None


@dataclass(frozen=True, slots=True)
class _Rule:
    reason: Reason
    budget: str
    key: str
    consume: bool = False
    attack: bool = False  # only in attack mode or for a flagged source


class Regulator:
    def __init__(
        self,
        settings: RateLimitSettings,
        *,
        store: FailureStore,
        limiter: Limiter,
        keys: RateLimitKeys,
        clock: Callable[[], float] = time.time,
        attack: AttackMonitor | None = None,
    ) -> None:
        self._settings = settings
        self._attack = attack if attack is not None and attack.settings.enabled else None
        self._store = store
        self._limiter = limiter
        self._keys = keys
        self._clock = clock
        self._report_only = {n: b.report_only for n, b in settings.budgets().items()}

    async def check(
        self, *, account: str, client_ip: str, factor: str = "password",
        device: str | None = None,
    ) -> Decision:
        """May this attempt be evaluated? Call before any hashing or verification."""
        _require_factors(factor)
        now = self._clock()
        acct = self._keys.account(account)
        if device is None and factor in _GUESSABLE:
            known = self._known_refusal(acct, client_ip)
            if known is not None:
                return known
        subject = await self._subject(acct, factor, device)
        flagged = self._schedule(subject, now)
        if flagged is not None and not flagged.report_only:
            return flagged
        for rule in self._rules(acct, client_ip, factor, subject):
            if rule.attack and not (self._attack and await self._attack.tight_for(client_ip)):
                continue
            wait = await self._spent(rule)
            if not wait:
                continue
            refused = Decision(False, wait, rule.reason, device=subject.device is not None)
            if not self._report_only[rule.budget]:
                return refused
            flagged = flagged or replace(refused, allowed=True, report_only=True)
        return flagged or Decision(True, 0, "ok", device=subject.device is not None)

    async def record_attempt(
        self, *, account: str, client_ip: str, factor: str = "password", success: bool,
        device: str | None = None, involved: Collection[str] = (),
    ) -> Decision:
        """Record an evaluated attempt; return what now applies to the next one.

        ``involved``: other factors presented in the same attempt (a correct password with a
        wrong TOTP code). A success resets them too; a disable disables them too (RL-01).
        """
        _require_factors(factor, *involved)
        now = self._clock()
        acct = self._keys.account(account)
        subject = await self._subject(acct, factor, device)
        if self._attack is not None and factor == "password":
            await self._attack.observe(account_key=acct, client_ip=client_ip, success=success,
                                       device=subject.device is not None)
        if success:
            for name in (factor, *involved):
                await self._store.reset(self._record_key(acct, name, subject.device))
            return Decision(True, 0, "ok", device=subject.device is not None)
        settings = self._settings
        record = await self._store.add_failure(
            subject.record_key, now, ttl=settings.forget_after, disable_at=settings.disable_after)
        if record.disabled and record.count == settings.disable_after:
            await self._disabled(acct, factor, subject, involved, now)
        if factor in _GUESSABLE:
            await self._count_failure(acct, client_ip)
        subject = replace(subject, record=record)
        return self._schedule(subject, now) or Decision(
            True, 0, "ok", device=subject.device is not None)

    async def unlock(self, *, account: str, factor: str | None = None) -> None:
        """Lift the disable and forget the failures of one factor, or of all (RL-01)."""
        await self.unlock_key(account_key=self._keys.account(account), factor=factor)

    async def unlock_key(self, *, account_key: str, factor: str | None = None) -> None:
        """:meth:`unlock` by the account's key, as a lockout record holds it: the way to
        unlock a name that is no user, whose text was never kept."""
        if not _ACCOUNT_KEY.fullmatch(account_key):
            raise RateLimitError("account_key must be 32 lowercase hex characters")
        factors = FACTORS if factor is None else (factor,)
        _require_factors(*factors)
        for name in factors:
            await self._store.reset(self._record_key(account_key, name, None), force=True)
            await self._limiter.clear(f"account.{name}", account_key)
        log.info("ratelimit_unlock", extra={
            "event": "ratelimit_unlock", "account_key": account_key, "factors": list(factors)})

    async def state(self, *, account: str) -> AccountState:
        now = self._clock()
        acct = self._keys.account(account)
        factors: dict[str, FactorState] = {}
        for name in FACTORS:
            record = await self._store.get(self._record_key(acct, name, None))
            wait_until = record.last_failure + self._settings.delay_after(record.count)
            factors[name] = FactorState(
                failures=record.count,
                last_failure=record.last_failure or None,
                wait_until=wait_until if wait_until > now else None,
                disabled=record.disabled,
            )
        return AccountState(account_key=acct, factors=factors)

    async def count_refusal(self, *, account: str, client_ip: str) -> None:
        """An attempt refused unevaluated for a bad proof of work (attack mode): it costs the
        address budgets as a failure does, never the account's counters or the global one."""
        for rule in self._address_rules(self._keys.account(account), client_ip):
            if rule.reason != "global":
                await self._limiter.hit(rule.budget, rule.key)

    async def close(self) -> None:
        await self._store.close()
        await self._limiter.close()

    # -- internals -------------------------------------------------------------------------

    async def _subject(self, acct: str, factor: str, device: str | None) -> _Subject:
        if device is not None:
            if not _DEVICE_ID.fullmatch(device):
                raise RateLimitError("device id must be 1-64 characters of [A-Za-z0-9_-]")
            key = self._record_key(acct, factor, device)
            record = await self._store.get(key)
            if not record.disabled:
                return _Subject(key, f"{acct}:d:{device}", record, device)
            # A burned device token counts as no token: its attempts are anyone's.
        key = self._record_key(acct, factor, None)
        return _Subject(key, acct, await self._store.get(key), None)

    @staticmethod
    def _record_key(acct: str, factor: str, device: str | None) -> str:
        return f"{acct}:{factor}" if device is None else f"{acct}:{factor}:d:{device}"

    def _schedule(self, subject: _Subject, now: float) -> Decision | None:
        """The consecutive-failure verdict: disabled, waiting, or None (no objection)."""
        record, on_device = subject.record, subject.device is not None
        if record.disabled:
            return Decision(False, 0, "disabled", device=on_device)
        wait_until = record.last_failure + self._settings.delay_after(record.count)
        if now >= wait_until:
            return None
        refused = Decision(False, math.ceil(wait_until - now), "delay", device=on_device)
        if self._settings.delay_report_only:
            return replace(refused, allowed=True, report_only=True)
        return refused

    def _rules(
        self, acct: str, client_ip: str, factor: str, subject: _Subject
    ) -> list[_Rule]:
        rules: list[_Rule] = []
        if factor in _GUESSABLE and subject.device is None:
            rules = self._address_rules(acct, client_ip)
        rules.append(_Rule("account", f"account.{factor}", subject.budget_key, consume=True))
        return rules

    def _address_rules(self, acct: str | None, client_ip: str) -> list[_Rule]:
        keys = self._keys
        rules = [
            _Rule("ip", "ip", keys.ip(client_ip)),
            _Rule("subnet", "subnet", keys.subnet(client_ip)),
            _Rule("global", "global_failures", "all"),
        ]
        if acct is not None:
            rules.insert(0, _Rule("account_ip", "account_ip", keys.account_ip(acct, client_ip)))
        if self._attack is not None:  # always counted, consulted only when in force
            rules += [_Rule("attack_ip", "attack.ip", keys.ip(client_ip), attack=True),
                      _Rule("attack_subnet", "attack.subnet", keys.subnet(client_ip), attack=True)]
        return rules

    def known_address_refusal(self, *, client_ip: str) -> Decision | None:
        """For an attempt from ``client_ip`` on a browser that is not a known device: the
        refusal of an address, subnet or global budget this process already knows is spent,
        else None. From memory alone and without the account, so it can be asked before the
        request body is read (the admission gate, gateway/admission.py)."""
        return self._known_refusal(None, client_ip)

    def _known_refusal(self, acct: str | None, client_ip: str) -> Decision | None:
        """A refusal from an address budget this process already knows is spent: the
        cheap answer to a flood (no store round trip). Anything else returns None.
        Without ``acct`` the account+address budget is left out. Attack mode's budgets count
        when attack mode is known to be in force for the client (``known_tight``)."""
        tight: bool | None = None
        for rule in self._address_rules(acct, client_ip):
            if self._report_only[rule.budget]:
                continue
            if rule.attack:
                if tight is None:
                    tight = self._attack is not None and self._attack.known_tight(client_ip)
                if not tight:
                    continue
            wait = self._limiter.known_retry_after(rule.budget, rule.key)
            if wait:
                return Decision(False, wait, rule.reason)
        return None

    async def _spent(self, rule: _Rule) -> int:
        """0 if the rule has room (taking it, for an attempt budget); else the wait."""
        if rule.consume:
            if await self._limiter.hit(rule.budget, rule.key):
                return 0
            return max(1, await self._limiter.retry_after(rule.budget, rule.key))
        return await self._limiter.retry_after(rule.budget, rule.key)

    async def _count_failure(self, acct: str, client_ip: str) -> None:
        for rule in self._address_rules(acct, client_ip):
            await self._limiter.hit(rule.budget, rule.key)

    async def _disabled(
        self, acct: str, factor: str, subject: _Subject, involved: Collection[str], now: float
    ) -> None:
        for name in involved:
            await self._store.disable(self._record_key(acct, name, subject.device), now)
        log.warning("authn_login_lock:maxretries", extra={
            "event": "authn_login_lock:maxretries", "account_key": acct,
            "factors": [factor, *involved], "device": subject.device is not None})


def _require_factors(*factors: str) -> None:
    for factor in factors:
        if factor not in FACTORS:
            raise RateLimitError(f"unknown factor {factor!r}; known: {', '.join(FACTORS)}")
