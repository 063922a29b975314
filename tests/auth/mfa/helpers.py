"""Building blocks for the MFA tests: a controllable clock, a recording auditor and alert sink,
and an environment that builds real ``Mfa`` facades (one per "replica") on one database and
one state URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sekisho.audit.alerter import Alerter
from sekisho.audit.alerts import Digest
from sekisho.audit.events import AuditEvent
from sekisho.audit.log import Auditor, audit_log
from sekisho.auth.mfa import Mfa, build_mfa
from sekisho.config import Secrets, Settings, validate_settings
from sekisho.store import Database, StoredAuditEvent, User, UserRepository

ORIGIN = "https://gw.example.test"
RP_ID = "gw.example.test"
START = 1_700_000_010.0  # 10 s into a 30 s step


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingAuditor(Auditor):
    """The real database auditor, also keeping what it recorded for the test to read."""

    def __init__(self, db: Database) -> None:
        super().__init__(store=audit_log(db))
        self.events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> StoredAuditEvent | None:
        self.events.append(event)
        return await super().record(event)

    def named(self, name: str) -> list[AuditEvent]:
        return [e for e in self.events if e.event == name]


class RecordingSink:
    name = "recording"

    def __init__(self) -> None:
        self.digests: list[Digest] = []

    async def send(self, digest: Digest) -> None:
        self.digests.append(digest)

    async def close(self) -> None:
        return None


@dataclass
class MfaEnv:
    db: Database
    state_url: str
    clock: FakeClock
    secrets: Secrets = field(default_factory=lambda: Secrets(
        session_key=os.urandom(32), data_key=os.urandom(32)))
    mfa_settings: dict[str, object] = field(default_factory=lambda: {
        "required_groups": ["admins"]})
    closers: list[object] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.users = UserRepository(self.db)
        self.auditor = RecordingAuditor(self.db)
        self.alerter = Alerter(sinks=[RecordingSink()])
        self.prefix = f"sekisho-test-{uuid.uuid4().hex[:8]}:"
        self.mfa = self.replica()

    @property
    def settings(self) -> Settings:
        return validate_settings({
            "server": {"public_origins": [ORIGIN]}, "state": {"url": self.state_url},
            "mfa": self.mfa_settings,
        })

    @property
    def shared(self) -> bool:
        """True when replicas share the state (Redis), as several gateway processes would."""
        return not self.state_url.startswith("memory://")

    def replica(self, *, data_key: bytes | None = None) -> Mfa:
        """Another gateway process on the same database and state (and data key)."""
        secrets = self.secrets if data_key is None else Secrets(
            session_key=self.secrets.session_key, data_key=data_key)
        mfa, close = build_mfa(
            self.settings, secrets, db=self.db, users=self.users, auditor=self.auditor,
            alerter=self.alerter, clock=self.clock, prefix=self.prefix)
        self.closers.append(close)
        return mfa

    async def add_user(self, name: str | None = None, *, groups: Sequence[str] = (),
                       password: bool = True) -> User:
        return await self.users.add(
            username=name or f"user-{uuid.uuid4().hex[:6]}", groups=groups,
            password_hash="$argon2id$placeholder" if password else None)

    async def close(self) -> None:
        for close in self.closers:
            await close()  # type: ignore[operator]
        await self.alerter.close()
