"""The MFA facade: the one object the portal talks to (``services.mfa``).

docs/mfa.md explains storage, sealing, replay and the passkey settings; the portal
(``gateway/portal/mfa_*``) uses only the methods here. Audit events this facade records itself
(OWASP vocabulary names, ``audit.events``):

==========================================  ===============================================
``authn_factor_bound:totp|passkey``         a TOTP authenticator or a passkey was bound
``authn_factor_removed:totp|passkey``       ... removed
``authn_token_reuse:totp``                  a correct TOTP code replayed (TO-06; CRITICAL)
``authn_webauthn_counter_regression``       a passkey's counter went backwards (WA-06;
                                            CRITICAL, plus an alert)
``authn_recovery_codes_regenerated``        a new recovery code set (RC-03)
``authn_recovery_code_used``                a recovery code spent (RC-05)
==========================================  ===============================================

Login-level events (``authn_login_*``) and rate limiting (TO-08, RC-04) are the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sekisho.audit.alerter import Alerter
from sekisho.audit.alerts import Alert
from sekisho.audit.events import AuditEvent
from sekisho.audit.log import Auditor
from sekisho.auth.mfa.errors import (
    InvalidCode,
    LastFactor,
    MfaUsageError,
    ReplayedCode,
    SignCountRegression,
    UnknownPasskey,
)
from sekisho.auth.mfa.passkeys import Passkeys, clean_name
from sekisho.auth.mfa.recovery import RecoveryCodes
from sekisho.auth.mfa.replay import StepStore
from sekisho.auth.mfa.totp import PERIOD, TotpCodes, valid_secret
from sekisho.auth.sealing import Sealer
from sekisho.config.mfa import MfaSettings
from sekisho.store.factors import FactorCounts, FactorRepository, RemovalCheck, StoredPasskey
from sekisho.store.users import User, UserRepository

__all__ = ["FactorSummary", "Mfa", "PasskeyInfo"]

# A step is acceptable from (step-1)*PERIOD until (step+2)*PERIOD: keep its record longer.
STEP_TTL = 4 * PERIOD
_TOTP_PURPOSE = "totp-seed"


@dataclass(frozen=True)
class PasskeyInfo:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    backup_eligible: bool
    backed_up: bool
    transports: tuple[str, ...]

    @classmethod
    def of(cls, p: StoredPasskey) -> PasskeyInfo:
        return cls(id=p.id, name=p.name, created_at=p.created_at, last_used_at=p.last_used_at,
                   backup_eligible=p.backup_eligible, backed_up=p.backed_up,
                   transports=p.transports)


@dataclass(frozen=True)
class FactorSummary:
    totp: bool
    passkeys: tuple[PasskeyInfo, ...]
    recovery_remaining: int

    @property
    def has_second_factor(self) -> bool:
        return self.totp or bool(self.passkeys)


class Mfa:
    def __init__(
        self, settings: MfaSettings, *, public_origins: Sequence[str],
        factors: FactorRepository, users: UserRepository, sealer: Sealer,
        recovery: RecoveryCodes, steps: StepStore, passkeys: Passkeys,
        auditor: Auditor, alerter: Alerter, clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self.rp_id, self.origins = settings.relying_party(list(public_origins))
        self._factors = factors
        self._users = users
        self._sealer = sealer
        self._recovery = recovery
        self._steps = steps
        self._passkeys = passkeys
        self._auditor = auditor
        self._alerter = alerter
        self._totp = TotpCodes(issuer=settings.issuer, clock=clock)

    async def summary(self, *, user_id: int) -> FactorSummary:
        counts = await self._factors.counts(user_id)
        passkeys = await self._factors.passkeys(user_id) if counts.passkeys else []
        return FactorSummary(totp=counts.totp, passkeys=tuple(map(PasskeyInfo.of, passkeys)),
                             recovery_remaining=counts.recovery_remaining)

    def mfa_required(self, *, groups: Sequence[str]) -> bool:
        required = self._settings.required_groups
        return "*" in required or any(g in required for g in groups)

    # -- TOTP ------------------------------------------------------------------------------

    def totp_new_secret(self) -> str:
        return self._totp.new_secret()

    def totp_uri(self, *, secret: str, username: str) -> str:
        return self._totp.uri(secret=secret, username=username)

    def totp_qr_svg(self, *, uri: str) -> str:
        return self._totp.qr_svg(uri=uri)

    async def totp_enrol(self, *, user_id: int, secret: str, code: str) -> None:
        """Bind ``secret`` once ``code`` proves the app has it (TO-03). Replaces an earlier
        TOTP authenticator; its seed is deleted in the same transaction (TO-09)."""
        if not valid_secret(secret):
            raise MfaUsageError("not a TOTP secret made by totp_new_secret")
        step = self._totp.match(secret=secret, code=code)
        if step is None:
            raise InvalidCode()
        replaced = await self._factors.totp(user_id) is not None
        sealed = self._sealer.seal(secret.encode(), purpose=_TOTP_PURPOSE, context=str(user_id))
        totp_id = await self._factors.set_totp(user_id, sealed)
        # The enrolment code counts as used: it cannot log in afterwards (TO-05).
        await self._steps.advance(f"{user_id}:{totp_id}", step, ttl=STEP_TTL)
        await self._audit("authn_factor_bound:totp", user_id, "totp", replaced=replaced)

    async def totp_verify(self, *, user_id: int, code: str) -> None:
        """Accept a code of the user's authenticator once per step, atomically across
        replicas. Raises InvalidCode, or ReplayedCode for a step already used (TO-05/06)."""
        stored = await self._factors.totp(user_id)
        if stored is None:
            raise InvalidCode()
        secret = self._sealer.open(stored.sealed, purpose=_TOTP_PURPOSE, context=str(user_id))
        step = self._totp.match(secret=secret.decode(), code=code)
        if step is None:
            raise InvalidCode()
        if not await self._steps.advance(f"{user_id}:{stored.id}", step, ttl=STEP_TTL):
            await self._audit("authn_token_reuse:totp", user_id, "totp")
            raise ReplayedCode()
        await self._factors.touch_totp(stored.id)

    async def totp_remove(self, *, user_id: int) -> None:
        user = await self._user(user_id)
        if await self._factors.delete_totp(user_id, check=self._removal_check(user, "totp")):
            await self._audit("authn_factor_removed:totp", user_id, "totp")

    # -- recovery codes --------------------------------------------------------------------

    async def recovery_generate(self, *, user_id: int) -> list[str]:
        """A new set (RC-01); every earlier code stops working (RC-03). Shown once."""
        codes = self._recovery.generate(self._settings.recovery_codes)
        hashes = [self._recovery.hash(user_id=user_id, code=c) for c in codes]
        await self._factors.replace_recovery_codes(user_id, hashes)
        await self._audit("authn_recovery_codes_regenerated", user_id, "recovery",
                          count=len(codes))
        return codes

    async def recovery_use(self, *, user_id: int, code: str) -> None:
        """Spend one code, atomically (RC-02). Raises InvalidCode (wrong, malformed or used)."""
        hashes = self._recovery.hashes(user_id=user_id, code=code)
        if not await self._factors.use_recovery_code(user_id, hashes):
            raise InvalidCode()
        counts = await self._factors.counts(user_id)
        await self._audit("authn_recovery_code_used", user_id, "recovery",
                          remaining=counts.recovery_remaining)

    # -- passkeys --------------------------------------------------------------------------

    async def passkey_registration_options(self, *, user: User, binding: str) -> str:
        return await self._passkeys.registration_options(user=user, binding=binding)

    async def passkey_register(self, *, user: User, binding: str, response_json: str,
                               name: str) -> PasskeyInfo:
        stored = await self._passkeys.register(user=user, binding=binding,
                                               response_json=response_json, name=name)
        await self._audit("authn_factor_bound:passkey", user.id, "passkey",
                          passkey_id=stored.id, aaguid=stored.aaguid,
                          backup_eligible=stored.backup_eligible)
        return PasskeyInfo.of(stored)

    async def passkey_authentication_options(self, *, user: User | None, binding: str,
                                             passwordless: bool) -> str:
        if user is None and not passwordless:
            raise MfaUsageError("a second-factor ceremony needs the user")
        return await self._passkeys.authentication_options(
            user=user, binding=binding, passwordless=passwordless)

    async def passkey_authenticate(self, *, binding: str, response_json: str,
                                   user: User | None, passwordless: bool) -> int:
        if user is None and not passwordless:
            raise MfaUsageError("a second-factor ceremony needs the user")
        try:
            stored = await self._passkeys.authenticate(
                binding=binding, response_json=response_json, user=user,
                passwordless=passwordless)
        except SignCountRegression as exc:
            await self._counter_regression(exc)
            raise
        return stored.user_id

    async def passkey_rename(self, *, user_id: int, passkey_id: int, name: str) -> None:
        if not await self._factors.rename_passkey(user_id, passkey_id, clean_name(name)):
            raise UnknownPasskey()

    async def passkey_delete(self, *, user_id: int, passkey_id: int) -> None:
        user = await self._user(user_id)
        removed = await self._factors.delete_passkey(
            user_id, passkey_id, check=self._removal_check(user, "passkey"))
        if removed is None:
            raise UnknownPasskey()
        await self._audit("authn_factor_removed:passkey", user_id, "passkey",
                          passkey_id=removed.id, aaguid=removed.aaguid)

    # -- helpers ---------------------------------------------------------------------------

    async def _user(self, user_id: int) -> User:
        user = await self._users.get(user_id)
        if user is None:
            raise MfaUsageError("no such user")
        return user

    def _removal_check(self, user: User, kind: Literal["totp", "passkey"]) -> RemovalCheck:
        required = self.mfa_required(groups=user.groups)

        def check(counts: FactorCounts) -> None:
            if kind == "totp" and not counts.totp:
                return  # nothing to remove
            totp = counts.totp and kind != "totp"
            passkeys = counts.passkeys - (kind == "passkey")
            if required and not (totp or passkeys):
                raise LastFactor()  # WA-08
            if not user.has_password and not passkeys:
                raise LastFactor("a user without a password cannot remove the last passkey")

        return check

    async def _counter_regression(self, exc: SignCountRegression) -> None:
        user = await self._users.get(exc.user_id) if exc.user_id is not None else None
        who = user.username if user else f"user {exc.user_id}"
        await self._audit("authn_webauthn_counter_regression", exc.user_id, "passkey",
                          passkey_id=exc.passkey_id, stored_count=exc.stored,
                          received_count=exc.received)
        self._alerter.emit(Alert(
            kind="webauthn_counter_regression", severity="critical",
            title=f"Passkey counter went backwards: {who}",
            summary="A correctly signed passkey assertion carried a signature counter that "
                    "did not increase. The passkey may have been cloned; the login was refused.",
            fields={"username": who, "passkey_id": exc.passkey_id or 0,
                    "stored_count": exc.stored, "received_count": exc.received}))

    async def _audit(self, event: str, user_id: int | None, factor: str, **details: Any) -> None:
        await self._auditor.record(AuditEvent(
            event=event, account=None if user_id is None else str(user_id), factor=factor,
            details=details or None))
