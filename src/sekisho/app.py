"""The composition root: build every client and store from settings and hand them on.

No module-level settings object: ``create_app(settings)`` is called by the CLI, the tests and
``app_from_env`` (the factory uvicorn imports in each worker when ``--workers`` > 1).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from sekisho.audit.alerter import Alerter
from sekisho.audit.alerts import Alert
from sekisho.audit.events import lockout_opened
from sekisho.audit.log import Auditor
from sekisho.audit.notifier import UserNotifier
from sekisho.auth.csrf import CsrfTokens
from sekisho.auth.mfa import build_mfa
from sekisho.auth.passwords import Passwords
from sekisho.auth.session_manager import SessionManager
from sekisho.auth.sessions import MemorySessionStore, Session, SessionStore
from sekisho.auth.usernames import canonical_username
from sekisho.config import Secrets, Settings, load_secrets, load_settings
from sekisho.gateway.attack_reports import build_attack
from sekisho.gateway.clientip import ClientIP
from sekisho.gateway.cookies import CookieNames
from sekisho.gateway.dispatch import Gateway
from sekisho.gateway.guard import Guard
from sekisho.gateway.portal import build_portal
from sekisho.gateway.portal.breach_gate import build_checker
from sekisho.gateway.proxy import UpstreamProxy
from sekisho.gateway.routing import Router
from sekisho.gateway.services import Services
from sekisho.ratelimit.device import DeviceTokens
from sekisho.ratelimit.factory import create_regulator
from sekisho.ratelimit.keys import RateLimitKeys
from sekisho.ratelimit.lockout_recorder import LockoutRecorder
from sekisho.store.db import Database
from sekisho.store.lockouts import LockoutRecord, LockoutRepository
from sekisho.store.users import UserRepository


def session_store(settings: Settings, *, clock: Callable[[], float]) -> SessionStore:
    url = settings.state.url
    if url.startswith("memory://"):
        return MemorySessionStore(clock=clock)
    from sekisho.auth.session_redis import RedisSessionStore

    return RedisSessionStore(url)


def build_services(
    settings: Settings, secrets: Secrets, *, clock: Callable[[], float] = time.time
) -> Services:
    db = Database.from_url(settings.database.url)
    users = UserRepository(db)

    async def user_may_continue(session: Session) -> bool:
        user = await users.get(session.user_id)
        return user is not None and not user.disabled

    sessions = SessionManager(
        session_store(settings, clock=clock), settings.session, clock=clock,
        user_check=user_may_continue,
    )
    passwords = Passwords.from_settings(settings.passwords)
    alerter = Alerter.from_settings(settings.alerts)
    auditor = Auditor.for_database(db)
    notifier = UserNotifier.from_settings(settings, users=users)  # AU-06
    auditor.subscribe(notifier.on_audit)
    attack = build_attack(settings, secrets.session_key, auditor=auditor, alerter=alerter,
                          clock=clock)
    regulator = create_regulator(
        settings.ratelimit, url=settings.state.url, secret=secrets.session_key, clock=clock,
        attack=attack,
    )
    keys = RateLimitKeys(secrets.session_key)

    async def on_lock(record: LockoutRecord, *, client_ip: str, user_agent: str) -> None:
        await auditor.record(lockout_opened(record, client_ip=client_ip, user_agent=user_agent))
        alerter.emit(lockout_alert(record))

    lockouts = LockoutRecorder(
        LockoutRepository(db), keys, disable_after=settings.ratelimit.disable_after,
        users=users, on_lock=on_lock,
    )
    breach = build_checker(settings.breach, auditor)
    mfa, close_mfa = build_mfa(
        settings, secrets, db=db, users=users, auditor=auditor, alerter=alerter, clock=clock)
    services = Services(
        settings=settings,
        sessions=sessions,
        users=users,
        passwords=passwords,
        csrf=CsrfTokens(secrets.session_key),
        cookies=CookieNames.from_settings(settings),
        regulator=regulator,
        devices=DeviceTokens(secrets.session_key),
        alerter=alerter,
        auditor=auditor,
        lockouts=lockouts,
        keys=keys,
        database=db,
        mfa=mfa,
        attack=attack,
        breach=breach,
        clock=clock,
        notifier=notifier,
    )
    services.startup += [db.migrate, sessions.start, alerter.start, breach.start, attack.start,
                         notifier.start]

    async def stop_hashing() -> None:
        passwords.close()

    services.shutdown += [
        db.close, sessions.close, regulator.close, alerter.close, stop_hashing, lockouts.flush,
        close_mfa,
        breach.close,
        attack.close,
        notifier.close,  # first: its last sends still look users up in the database
    ]
    return services


def create_app(
    settings: Settings, secrets: Secrets | None = None, *, clock: Callable[[], float] = time.time
) -> Gateway:
    """The gateway ASGI app. Raises ConfigError when a secret is missing or bad."""
    secrets = secrets or load_secrets(settings)
    services = build_services(settings, secrets, clock=clock)
    cookies = services.cookies
    proxy = UpstreamProxy(
        settings.upstreams, identity=settings.identity, gateway_cookies=cookies.all,
        trusted_proxies=settings.server.trusted_proxies,
    )
    return Gateway(
        services,
        portal=build_portal(services),
        proxy=proxy,
        router=Router(settings.upstreams),
        guard=Guard(settings),
        client_ip=ClientIP(settings.server.trusted_proxies),
    )


def lockout_alert(record: LockoutRecord) -> Alert:
    who = record.username or f"unknown name ({record.account_key[:8]}…)"
    return Alert(
        kind="lockout", severity="warning", title=f"Account locked: {who}",
        summary=f"{record.failure_count} failures from {record.distinct_ips} address(es) "
                f"disabled the {record.factor} factor",
        fields={"account": who, "factor": record.factor, "lockout_id": record.id or 0,
                "failures": record.failure_count, "addresses": record.distinct_ips,
                "subnets": record.distinct_subnets},
    )


def app_from_env() -> Gateway:
    """uvicorn factory for multi-worker serving: settings from $SEKISHO_CONFIG and env."""
    return create_app(load_settings(os.environ.get("SEKISHO_CONFIG")))


async def end_user_sessions(settings: Settings, user_id: int) -> int:
    """End every session of a user in the shared state (the CLI's `user disable`)."""
    store = session_store(settings, clock=time.time)
    await store.start()
    try:
        return await store.delete_user(user_id)
    finally:
        await store.close()


async def create_demo_user(settings: Settings, *, username: str, password: str) -> None:
    """The one user of `sekisho demo`, created before the server starts."""
    db = Database.from_url(settings.database.url)
    passwords = Passwords.from_settings(settings.passwords)
    try:
        await db.migrate()
        await UserRepository(db).add(
            username=canonical_username(username), email=f"{username}@example.com",
            display_name="Demo User", groups=["staff"],
            password_hash=await passwords.hash(password),
        )
    finally:
        passwords.close()
        await db.close()
