"""``[notifications]``: defaults, resolution against ``[alerts.smtp]``, messages that name
the key, building the notifier (files read at start), the TOML examples in
docs/notifications.md; the Notice's fact whitelist; the users.notify_email column (0004)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select

from sekisho.audit.notifier import UserNotifier
from sekisho.audit.notify_messages import KINDS, Notice
from sekisho.config import generate_key, load_settings, validate_settings
from sekisho.errors import ConfigError
from sekisho.store.db import Database, alembic_config
from sekisho.store.tables import user_groups
from sekisho.store.users import UserRepository

DOCS = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"
SMTP = {"host": "mail.example.com", "from": "sekisho@example.com",
        "to": ["security@example.com"]}
CONTACT = "IT helpdesk, ext. 1234"


def settings(**sections: Any) -> Any:
    data: dict[str, Any] = {"secrets": {"session_key": generate_key(),
                                        "data_key": generate_key()}}
    data.update(sections)
    return validate_settings(data)


def problems(**sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings(**sections)
    return info.value.problems


def test_off_without_a_mail_server() -> None:
    assert settings().notification_plan() is None
    assert settings(notifications={"contact": CONTACT}).notification_plan() is None


def test_on_with_the_alerts_server_by_default() -> None:
    plan = settings(alerts={"smtp": SMTP}, notifications={"contact": CONTACT},
                    server={"public_origins": ["https://gw.example.com"]}).notification_plan()
    assert plan is not None
    assert (plan.smtp.host, plan.smtp_key, plan.sender, plan.contact) == (
        "mail.example.com", "alerts.smtp", "sekisho@example.com", CONTACT)
    assert plan.portal_url == "https://gw.example.com/_sekisho"


def test_own_server_and_sender_win() -> None:
    plan = settings(alerts={"smtp": SMTP}, notifications={
        "contact": CONTACT, "from": "no-reply@example.com",
        "smtp": {"host": "relay.example.com", "security": "none"},
        "portal_url": "https://id.example.com/_sekisho/"}).notification_plan()
    assert plan is not None
    assert (plan.smtp.host, plan.smtp.effective_port, plan.smtp_key, plan.sender) == (
        "relay.example.com", 25, "notifications.smtp", "no-reply@example.com")
    assert plan.portal_url == "https://id.example.com/_sekisho"


def test_enabled_false_needs_nothing_else() -> None:
    assert settings(alerts={"smtp": SMTP},
                    notifications={"enabled": False}).notification_plan() is None


@pytest.mark.parametrize(("sections", "expected"), [
    ({"alerts": {"smtp": SMTP}}, "notifications.contact: required when notifications are "
                                 "enabled"),
    ({"notifications": {"enabled": True, "contact": CONTACT}},
     "notifications.enabled: needs [notifications.smtp] or [alerts.smtp]"),
    ({"notifications": {"contact": CONTACT, "smtp": {"host": "relay"}}},
     "notifications.from: required"),
    ({"notifications": {"contact": CONTACT, "smtp": {"host": "relay", "to": ["a@b.example"]}}},
     "notifications.smtp.to: not used here"),
    ({"notifications": {"contact": CONTACT, "smtp": {"host": "relay", "from": "nobody"}}},
     "notifications.smtp.from: must be a plain address"),
    ({"notifications": {"contact": CONTACT, "from": "Sekisho <s@example.com>"}},
     "notifications.from: must be a plain address"),
    ({"notifications": {"contact": "  "}}, "notifications.contact: must say whom to contact"),
    ({"notifications": {"contact": "helpdesk\r\nBcc: x@example.com"}},
     "notifications.contact: must be one line"),
    ({"notifications": {"contact": "x" * 301}}, "notifications.contact: "),
    ({"notifications": {"portal_url": "gw.example.com/_sekisho"}},
     "notifications.portal_url: must be an http(s) URL"),
    ({"notifications": {"portal_url": "https://gw.example.com/x?next=evil"}},
     "notifications.portal_url: must not carry a query"),
    ({"notifications": {"retries": 11}}, "notifications.retries: "),
    ({"notifications": {"retry_backoff": 0}}, "notifications.retry_backoff: "),
    ({"notifications": {"max_pending": 5}}, "notifications.max_pending: "),
    ({"notifications": {"subject_prefix": "[a]\n"}}, "notifications.subject_prefix: must be"),
    ({"notifications": {"contact": CONTACT, "smtp": {"host": "relay", "from": "s@x.example",
                                                     "username": "u"}}},
     "notifications.smtp: username needs password"),
    ({"notifications": {"kontakt": CONTACT}}, "notifications.kontakt: unknown key"),
])
def test_messages_name_the_key(sections: dict[str, Any], expected: str) -> None:
    found = problems(**sections)
    assert any(expected in p for p in found), found


def test_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "sekisho.toml"
    config.write_text("[alerts.smtp]\nhost = 'mail.example.com'\nfrom = 's@example.com'\n"
                      "to = ['sec@example.com']\n")
    with pytest.raises(ConfigError, match=r"notifications\.contact: required"):
        load_settings(config, env={})
    loaded = load_settings(config, env={"SEKISHO_NOTIFICATIONS__CONTACT": CONTACT,
                                        "SEKISHO_NOTIFICATIONS__FROM": "n@example.com"})
    plan = loaded.notification_plan()
    assert plan is not None and (plan.contact, plan.sender) == (CONTACT, "n@example.com")


async def test_building_reads_the_password_file_now(tmp_path: Path) -> None:
    smtp = {**SMTP, "username": "u", "password_file": str(tmp_path / "missing")}
    with pytest.raises(ConfigError) as info:
        UserNotifier.from_settings(settings(alerts={"smtp": smtp},
                                            notifications={"contact": CONTACT}), users=None)  # type: ignore[arg-type]
    assert info.value.problems == ["alerts.smtp.password_file: cannot read (FileNotFoundError)"]
    off = UserNotifier.from_settings(settings(), users=None)  # type: ignore[arg-type]
    assert not off.enabled


def test_every_toml_example_in_the_docs_is_valid() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    plans = [settings(**tomllib.loads(block)).notification_plan() for block in blocks]
    assert [plan is not None for plan in plans] == [True, True, False]


def test_the_docs_list_every_kind() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert all(f"`{kind}`" in text for kind in KINDS)


# -- what a notice may carry ----------------------------------------------------------------

@pytest.mark.parametrize("facts", [
    {"password": "hunter2"}, {"code": 123456}, {"factor": 5}, {"remaining": "9"},
    {"replaced": 1}, {"token": "x"}])
def test_a_notice_carries_only_whitelisted_facts(facts: dict[str, Any]) -> None:
    from datetime import UTC, datetime
    with pytest.raises(ValueError, match="not one a notice may carry"):
        Notice(kind="password_changed", user_id=1, when=datetime.now(UTC), facts=facts)


def test_a_notice_cleans_what_came_from_clients() -> None:
    from datetime import UTC, datetime
    notice = Notice(kind="authenticator_removed", user_id=1, when=datetime.now(UTC),
                    client_ip="10.0.0.1\r\nBcc: x", device="Evil\r\nBcc: x@y",
                    facts={"factor": "hunter2"}, reference="audit #5\nx")
    assert notice.client_ip is None and notice.facts["factor"] == "other"
    assert "\n" not in (notice.device or "") and "\n" not in (notice.reference or "")


# -- the second address in the store (migration 0004) ----------------------------------------

async def test_notify_email_round_trip(database: Database) -> None:
    users = UserRepository(database)
    user = await users.add(username="alice", email="a@example.com", notify_email="a@example.org")
    assert user.notify_addresses == ("a@example.com", "a@example.org")
    await users.set_notify_email(user.id, None)
    fetched = await users.get(user.id)
    assert fetched is not None and fetched.notify_email is None
    assert fetched.notify_addresses == ("a@example.com",)


async def test_migration_0004_down_and_up_keeps_users_and_their_rows(
    database: Database,
) -> None:
    """Dropping the column must not copy ``users`` (with foreign keys on, dropping the old
    table would cascade to every row that refers to it)."""
    from alembic import command

    users = UserRepository(database)
    user = await users.add(username="alice", groups=["staff"], notify_email="a@example.org")

    def columns(sync_conn: Any) -> set[str]:
        return {c["name"] for c in inspect(sync_conn).get_columns("users")}

    async with database.transaction(write=True) as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0003"))
        assert "notify_email" not in await conn.run_sync(columns)
    async with database.transaction() as conn:
        assert (await conn.execute(select(user_groups.c.name))).scalars().all() == ["staff"]
    await database.migrate()
    fetched = await users.get(user.id)
    assert fetched is not None and fetched.groups == ("staff",)
    assert fetched.notify_email is None


async def test_migration_matches_the_table_definition(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from sekisho.store.tables import metadata

    def diff(sync_conn: Any) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return [d for d in compare_metadata(context, metadata) if "notify_email" in repr(d)]

    async with database.transaction() as conn:
        assert await conn.run_sync(diff) == []
