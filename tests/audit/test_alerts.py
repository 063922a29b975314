"""Alerts: the Alert and Digest values, the [alerts] settings and their messages, building the
sinks from settings (secret files), and the examples in docs/alerts.md."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from sekisho.audit.alert_formats import headline, render_slack
from sekisho.audit.alert_sinks import LogSink, SmtpSink, WebhookSink, create_sinks
from sekisho.audit.alerter import Alerter
from sekisho.audit.alerts import ALERT_KINDS, Alert, Digest, InvalidAlert
from sekisho.config.alerts import AlertSettings
from sekisho.errors import ConfigError, SekishoError

CANARY = "CANARY-correct-horse-5b1a"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"


def make_alert(**overrides: Any) -> Alert:
    values: dict[str, Any] = {"kind": "lockout", "severity": "warning", "title": "Locked",
                              "summary": "", "fields": {"account": "alice"}}
    values.update(overrides)
    return Alert(**values)


# --- Alert ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "password", "attempted_password", "new_passwd", "totp_code", "code", "recovery_codes",
    "otp", "reset_token", "session_id", "sid", "secret", "client_secret", "session",
    "api_key", "cookie", "pin", "seed"])
def test_secret_looking_field_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidAlert) as info:
        make_alert(fields={"account": "alice", name: CANARY})
    assert "AU-03" in str(info.value) and name in str(info.value)
    assert CANARY not in str(info.value)
    assert isinstance(info.value, SekishoError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", [
    "account", "username", "client_ip", "subnet", "failures", "distinct_ips", "factor",
    "reason", "user_agent", "credential_id", "hash_prefix", "unlocks", "ip_count"])
def test_ordinary_field_names_pass(name: str) -> None:
    assert make_alert(fields={name: 1}).fields[name] == 1


@pytest.mark.parametrize("fields", [{"Password": "x"}, {"client-ip": "x"}, {"": "x"},
                                    {"x" * 49: "x"}])
def test_field_names_must_be_snake_case(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidAlert, match="snake_case"):
        make_alert(fields=fields)


@pytest.mark.parametrize(("overrides", "rule"), [
    ({"kind": "lokout"}, "unknown alert kind"),
    ({"severity": "fatal"}, "severity"),
    ({"title": "  "}, "title"),
    ({"fields": {"n": 1.5}}, "text or an integer"),
    ({"fields": {f"f{i}": i for i in range(21)}}, "at most 20"),
    ({"occurred_at": datetime(2026, 1, 1)}, "timezone-aware"),
])
def test_invalid_alerts(overrides: dict[str, Any], rule: str) -> None:
    with pytest.raises(InvalidAlert, match=rule):
        make_alert(**overrides)


def test_values_are_cut_and_control_characters_escaped() -> None:
    alert = make_alert(title="Locked: bob\r\nBcc: x", summary="line 1\nline 2\x1b[31m",
                       fields={"account": "a" * 600, "username": "eve\n{\"forged\": 1}"})
    assert alert.title == "Locked: bob\\u000d\\u000aBcc: x"
    assert alert.summary == "line 1\nline 2\\u001b[31m"
    assert len(str(alert.fields["account"])) == 500
    assert alert.fields["username"] == 'eve\\u000a{"forged": 1}'


def test_alert_is_frozen_and_utc() -> None:
    moment = datetime(2026, 5, 1, 18, 0, tzinfo=timezone(timedelta(hours=9)))
    alert = make_alert(occurred_at=moment)
    assert alert.occurred_at == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    assert alert.as_dict()["occurred_at"] == "2026-05-01T09:00:00Z"
    with pytest.raises(AttributeError):
        alert.title = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        alert.fields["account"] = "mallory"  # type: ignore[index]


def test_digest_merge_and_headline() -> None:
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    a = Digest(alerts=(make_alert(title="a"),), counts={"lockout": 1}, total=1, first_at=t0,
               last_at=t0)
    b = Digest(alerts=(make_alert(title="b"), make_alert(kind="attack_mode", title="c")),
               counts={"lockout": 4, "attack_mode": 1}, total=5, first_at=t0,
               last_at=t0 + timedelta(minutes=5), dropped=2)
    merged = a.merge(b, limit=2)
    assert [x.title for x in merged.alerts] == ["a", "b"]
    assert (merged.total, merged.more, merged.dropped) == (6, 4, 2)
    assert headline(merged) == "6 alerts: lockout (5), attack_mode (1)"
    assert merged.last_at - merged.first_at == timedelta(minutes=5)


def test_slack_never_exceeds_fifty_blocks() -> None:
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    alerts = tuple(make_alert(title=f"t{n}") for n in range(60))
    body = render_slack(Digest(alerts=alerts, counts={"lockout": 60}, total=60, first_at=t0,
                               last_at=t0))
    assert len(body["blocks"]) == 50
    assert "and 15 more not shown" in body["blocks"][-1]["elements"][0]["text"]


# --- settings ------------------------------------------------------------------------------

class _Root(BaseModel):
    alerts: AlertSettings


def problems(data: dict[str, Any]) -> list[str]:
    """Messages as the config loader words them: dotted key, then the rule."""
    with pytest.raises(ValidationError) as info:
        _Root.model_validate({"alerts": data})
    return [".".join(str(p) for p in err["loc"]) + ": "
            + str(err["msg"]).removeprefix("Value error, ") for err in info.value.errors()]


SMTP = {"host": "mail.example.com", "from": "gw@example.com", "to": ["sec@example.com"]}


def test_defaults() -> None:
    s = AlertSettings()
    assert (s.enabled, s.webhook, s.smtp, s.digest_interval) == (True, None, None, 300.0)
    assert (s.max_per_digest, s.max_pending, s.send_first_immediately) == (20, 10_000, True)
    assert s.kinds == list(ALERT_KINDS)
    assert {"lockout", "attack_mode", "webauthn_counter_regression",
            "admin_unlock_burst"} <= set(s.kinds)
    smtp = AlertSettings.model_validate({"smtp": SMTP}).smtp
    assert smtp is not None
    assert (smtp.security, smtp.effective_port, smtp.sender) == (
        "starttls", 587, "gw@example.com")
    assert AlertSettings.model_validate(
        {"webhook": {"url": "https://h.example/x"}}).webhook.format == "json"  # type: ignore[union-attr]


@pytest.mark.parametrize(("data", "expected"), [
    ({"webhook": {}}, "alerts.webhook: set exactly one of url or url_file"),
    ({"webhook": {"url": "ftp://h/x", "url_file": "/f"}},
     "alerts.webhook.url: must be an http(s) URL"),
    ({"webhook": {"url": "https://h/x", "format": "discord"}}, "alerts.webhook.format: "),
    ({"webhook": {"url": "https://h/x", "timeout": 0}}, "alerts.webhook.timeout: "),
    ({"webhook": {"url": "https://h/x", "headers": {"Bad Name": "v"}}},
     "alerts.webhook.headers: header names must be HTTP tokens"),
    ({"webhook": {"url": "https://h/x", "headers": {"Host": "v"}}},
     "alerts.webhook.headers: Host is set by Sekisho"),
    ({"webhook": {"url": "https://h/x", "headers": {"X-A": "v\r\nX-B: w"}}},
     "alerts.webhook.headers: the value of X-A must not contain CR, LF"),
    ({"webhook": {"url": "https://h/x", "uri": "x"}}, "alerts.webhook.uri: "),
    ({"smtp": {**SMTP, "to": []}}, "alerts.smtp.to: must list at least one address"),
    ({"smtp": {**SMTP, "to": ["Sec <sec@example.com>"]}}, "alerts.smtp.to: each must be"),
    ({"smtp": {**SMTP, "from": "nobody"}}, "alerts.smtp.from: must be a plain address"),
    ({"smtp": {k: v for k, v in SMTP.items() if k != "from"}}, "alerts.smtp.from: "),
    ({"smtp": {**SMTP, "security": "tls"}}, "alerts.smtp.security: "),
    ({"smtp": {**SMTP, "port": 70000}}, "alerts.smtp.port: "),
    ({"smtp": {**SMTP, "username": "u"}}, "alerts.smtp: username needs password"),
    ({"smtp": {**SMTP, "password": "p"}}, "alerts.smtp: a password needs a username"),
    ({"smtp": {**SMTP, "username": "u", "password": "p", "password_file": "/f"}},
     "alerts.smtp: set either password or password_file"),
    ({"smtp": {**SMTP, "security": "none", "username": "u", "password": "p"}},
     'alerts.smtp: login needs security = "starttls" or "ssl"'),
    ({"digest_interval": 0.5}, "alerts.digest_interval: "),
    ({"max_per_digest": 41}, "alerts.max_per_digest: "),
    ({"kinds": ["lockout", "lokout"]}, "alerts.kinds: unknown kind 'lokout'"),
    ({"enabled": True}, "alerts: enabled needs [alerts.webhook] or [alerts.smtp]"),
])
def test_messages_name_the_key(data: dict[str, Any], expected: str) -> None:
    found = problems(data)
    assert any(p.startswith(expected) for p in found), found


def test_secret_values_are_not_echoed() -> None:
    found = problems({"webhook": {"url": f"ftp://hooks.example/{CANARY}",
                                  "headers": {"Authorization": f"Bearer {CANARY}\n"}}})
    assert found and not any(CANARY in p for p in found)
    settings = AlertSettings.model_validate({"webhook": {
        "url": f"https://hooks.example/{CANARY}", "headers": {"X-Key": CANARY}},
        "smtp": {**SMTP, "username": "u", "password": CANARY}})
    assert CANARY not in repr(settings) and CANARY not in str(settings)


def test_kinds_are_deduplicated_and_disabled_needs_no_sink() -> None:
    assert AlertSettings(kinds=["lockout", "lockout"]).kinds == ["lockout"]
    assert AlertSettings(enabled=False).enabled is False


# --- sinks from settings -------------------------------------------------------------------

def test_create_sinks_reads_secret_files(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("https://hooks.slack.example/services/T0/B0/XYZ\n")
    (tmp_path / "auth").write_text("Bearer s3cr3t\n")
    (tmp_path / "pw").write_text("hunter2\n")
    settings = AlertSettings.model_validate({
        "webhook": {"url_file": str(tmp_path / "url"), "format": "slack",
                    "header_files": {"Authorization": str(tmp_path / "auth")}},
        "smtp": {**SMTP, "username": "u", "password_file": str(tmp_path / "pw"),
                 "security": "ssl"}})
    log, webhook, smtp = create_sinks(settings)
    assert isinstance(log, LogSink)
    assert isinstance(webhook, WebhookSink) and isinstance(smtp, SmtpSink)
    assert webhook.name == "webhook https://hooks.slack.example"
    assert webhook.format == "slack"
    assert webhook._url == "https://hooks.slack.example/services/T0/B0/XYZ"
    assert webhook._headers["Authorization"] == "Bearer s3cr3t"
    assert smtp.name == "smtp mail.example.com:465"
    assert smtp._server._password == "hunter2"
    assert create_sinks(AlertSettings(enabled=False)) == []
    assert [s.name for s in create_sinks(AlertSettings())] == ["log"]


def test_unreadable_secret_files_name_their_key(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "bad-url").write_text(f"gopher://x/{CANARY}\n")
    (tmp_path / "two-lines").write_text("a\nb\n")
    settings = AlertSettings.model_validate({
        "webhook": {"url_file": str(tmp_path / "bad-url"), "header_files": {
            "Authorization": str(tmp_path / "missing"), "X-Token": str(tmp_path / "two-lines"),
            "X-Other": str(tmp_path / "empty")}},
        "smtp": {**SMTP, "username": "u", "password_file": str(tmp_path / "nope"),
                 "ca_file": str(tmp_path / "empty")}})
    with pytest.raises(ConfigError) as info:
        create_sinks(settings)
    assert info.value.problems == [
        "alerts.webhook.url_file: the URL in it must be an http(s) URL, "
        "e.g. https://hooks.example.com/...",
        "alerts.webhook.header_files.Authorization: cannot read (FileNotFoundError)",
        "alerts.webhook.header_files.X-Token: must hold one line",
        "alerts.webhook.header_files.X-Other: the file is empty",
        "alerts.smtp.password_file: cannot read (FileNotFoundError)",
        "alerts.smtp.ca_file: cannot load (SSLError)",
    ]
    assert CANARY not in str(info.value)


def test_alerter_from_settings() -> None:
    settings = AlertSettings.model_validate({
        "webhook": {"url": "https://h.example/x"}, "kinds": ["attack_mode"],
        "digest_interval": 60})
    alerter = Alerter.from_settings(settings)
    assert [s.name for s in alerter.sinks] == ["log", "webhook https://h.example"]
    alerter.emit(make_alert())
    assert alerter.stats().ignored == 1


# --- docs ----------------------------------------------------------------------------------

def test_every_toml_example_in_the_docs_is_valid() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 5
    for block in blocks:
        data = tomllib.loads(block)
        AlertSettings.model_validate(data["alerts"])


def test_the_docs_list_every_kind() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert all(f"| `{kind}` |" in text for kind in ALERT_KINDS)
