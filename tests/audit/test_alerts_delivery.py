"""Alerts delivered to real receivers: an aiohttp server on 127.0.0.1 that records what is
POSTed, and an aiosmtpd SMTP server (plain, and STARTTLS with AUTH) that records mail.

Assertions are on counts and contents; the only waits are hang guards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.audit.test_alerts_digest import ManualClock, until

from sekisho.audit.alert_sinks import SmtpSink, WebhookSink, create_sinks
from sekisho.audit.alerter import Alerter
from sekisho.audit.alerts import Alert, InvalidAlert
from sekisho.config.alerts import AlertSettings

CANARY = "CANARY-Tr0ub4dor&3-4e1f"
URL_TOKEN = "T0KEN-in-the-path-9c2d"
SMTP_PASSWORD = "CANARY-smtp-pw-77aa"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    raw: str


class WebhookReceiver:
    """Records every POST; answers with the queued statuses, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: list[int] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        self.requests.append(Received(request.path_qs, dict(request.headers), json.loads(raw),
                                      raw))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = f"/hooks/{URL_TOKEN}?sig={URL_TOKEN}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    recv = WebhookReceiver()
    await recv.start()
    try:
        yield recv
    finally:
        await recv.stop()


class MailRecorder:
    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = BytesParser(_class=EmailMessage, policy=default_policy).parsebytes(
            envelope.original_content)
        with self._lock:
            self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == SMTP_PASSWORD.encode()
        if ok:
            self.logins.append(auth_data.login.decode())
        # handled=False: aiosmtpd then answers 535 itself (its default is to stay silent).
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, MailRecorder]]:
    recorder = MailRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, recorder
    finally:
        controller.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def part(msg: EmailMessage, subtype: str) -> str:
    body = msg.get_body((subtype,))
    assert body is not None
    text: str = body.get_content()
    return text


async def mails(recorder: MailRecorder, n: int) -> None:
    await until(lambda: len(recorder.mails) >= n, f"{n} mails")


def sample_alerts() -> list[Alert]:
    return [
        Alert(kind="lockout", severity="warning", title="Account locked: alice",
              summary="5 failures from 3 addresses",
              fields={"account": "alice", "client_ip": "192.0.2.10", "failures": 5}),
        Alert(kind="lockout", severity="warning", title="Account locked: <!channel> *bob*",
              summary="name chosen by an attacker",
              fields={"account": "<!channel> [x](https://evil.example) <b>", "failures": 9}),
        Alert(kind="attack_mode", severity="critical", title="Attack mode on",
              summary="global failure ratio 0.93 over 10 minutes",
              fields={"failure_ratio_pct": 93, "distinct_ips": 1000}),
    ]


def smtp_sink(controller: Controller) -> SmtpSink:
    return SmtpSink(host="127.0.0.1", port=controller.port, security="none",
                    sender="sekisho@gw.example", to=["sec@example.com", "ops@example.com"])


async def deliver(*sinks: Any, alerts: list[Alert] | None = None) -> Alerter:
    """Send one digest of ``alerts`` (default: the samples) through ``sinks`` and close."""
    alerter = Alerter(sinks=list(sinks), interval=0.2)
    for item in alerts or sample_alerts():
        alerter.emit(item)
    await alerter.start()
    await alerter.close()
    return alerter


async def test_json_payload(receiver: WebhookReceiver) -> None:
    await deliver(WebhookSink(url=receiver.url(), format="json",
                              headers={"Authorization": "Bearer abc"}))
    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    assert got.headers["Content-Type"].startswith("application/json")
    assert got.headers["Authorization"] == "Bearer abc"
    assert got.headers["User-Agent"].startswith("sekisho-alerts/")
    body = got.body
    assert body["source"] == "sekisho" and body["version"] == 1
    assert (body["total"], body["shown"], body["more"], body["dropped"]) == (3, 3, 0, 0)
    assert body["counts"] == {"lockout": 2, "attack_mode": 1}
    assert body["severity"] == "critical"
    assert body["alerts"][0] == {
        "kind": "lockout", "severity": "warning", "title": "Account locked: alice",
        "summary": "5 failures from 3 addresses",
        "fields": {"account": "alice", "client_ip": "192.0.2.10", "failures": 5},
        "occurred_at": body["alerts"][0]["occurred_at"]}
    assert body["alerts"][0]["occurred_at"].endswith("Z")


async def test_slack_payload(receiver: WebhookReceiver) -> None:
    await deliver(WebhookSink(url=receiver.url(), format="slack"))
    body = receiver.requests[0].body
    assert body["text"] == "Sekisho: 3 alerts: lockout (2), attack_mode (1)"
    blocks = body["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text",
                                                    "text": "Sekisho: 3 alerts"}}
    assert {b["type"] for b in blocks} <= {"header", "section", "context", "divider"}
    assert len(blocks) <= 50
    sections = [b for b in blocks if b["type"] == "section"]
    assert "*lockout*: 2" in sections[0]["text"]["text"]
    assert len(sections) == 1 + 3
    assert all(s["text"]["type"] == "mrkdwn" for s in sections)
    assert {"type": "mrkdwn", "text": "*failures*\n5"} in sections[1]["fields"]
    # The attacker's name cannot mention a channel: Slack's control characters are escaped.
    raw = receiver.requests[0].raw
    assert "<!channel>" not in raw and "&lt;!channel&gt;" in raw


async def test_teams_payload(receiver: WebhookReceiver) -> None:
    await deliver(WebhookSink(url=receiver.url(), format="teams"))
    body = receiver.requests[0].body
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][0]["text"] == "Sekisho: 3 alerts"
    counts = next(item for item in card["body"] if item["type"] == "FactSet")
    assert counts["facts"] == [{"title": "lockout", "value": "2"},
                               {"title": "attack_mode", "value": "1"}]
    containers = [item for item in card["body"] if item["type"] == "Container"]
    assert len(containers) == 3
    facts = next(i for i in containers[1]["items"] if i["type"] == "FactSet")["facts"]
    account = next(f["value"] for f in facts if f["title"] == "account")
    assert "\\[x\\]\\(https://evil.example\\)" in account  # no live markdown link


async def test_flood_gives_one_post_and_one_mail_per_interval(
    receiver: WebhookReceiver, smtp_server: tuple[Controller, MailRecorder],
) -> None:
    controller, recorder = smtp_server
    clock = ManualClock()
    alerter = Alerter(sinks=[WebhookSink(url=receiver.url(), format="json"),
                             smtp_sink(controller)],
                      interval=300, settle=0, clock=clock)
    await alerter.start()
    alerter.emit(sample_alerts()[0])  # the first after a quiet period goes out at once
    await until(lambda: len(receiver.requests) == 1)
    await mails(recorder, 1)
    for n in range(1000):  # a flood, interleaved with the rest of the event loop
        alerter.emit(Alert(kind="lockout", severity="warning", title=f"Account locked: u{n}",
                           summary="", fields={"account": f"u{n}", "client_ip": "192.0.2.1"}))
        if n % 10 == 0:
            await asyncio.sleep(0)
    await until(lambda: clock.sleeping, "the interval wait")
    assert len(receiver.requests) == 1 and len(recorder.mails) == 1
    clock.advance(300)
    await until(lambda: len(receiver.requests) == 2)
    await mails(recorder, 2)
    await alerter.close()
    assert len(receiver.requests) == 2 and len(recorder.mails) == 2
    body = receiver.requests[1].body
    assert (body["total"], body["counts"], body["shown"], body["more"]) == (
        1000, {"lockout": 1000}, 20, 980)
    _, _, mail = recorder.mails[1]
    assert mail["Subject"] == "[Sekisho] 1000 alerts: lockout (1000)"
    text = part(mail, "plain")
    assert "lockout" in text and "1000" in text and "and 980 more not shown" in text


async def test_failing_webhook_is_logged_safely_and_retried(
    receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.statuses = [500]
    alerter = Alerter(sinks=[WebhookSink(url=receiver.url())], interval=0.2)
    await alerter.start()
    with caplog.at_level(logging.WARNING, logger="sekisho.alerts"):
        alerter.emit(sample_alerts()[0])  # does not raise
        await until(lambda: len(receiver.requests) == 2, "the retry")
        alerter.emit(sample_alerts()[2])
        await until(lambda: len(receiver.requests) == 3, "the next interval's digest")
        await alerter.close()
    assert [r.body["total"] for r in receiver.requests] == [1, 1, 1]
    assert receiver.requests[1].body["alerts"][0]["title"] == "Account locked: alice"
    assert f"webhook http://127.0.0.1:{receiver.port} failed" in caplog.text
    assert "answered HTTP 500" in caplog.text
    assert URL_TOKEN not in caplog.text


async def test_refused_connection_then_retry(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    late = WebhookReceiver()
    clock = ManualClock()
    alerter = Alerter(sinks=[WebhookSink(url=f"http://127.0.0.1:{port}/hook/{URL_TOKEN}")],
                      interval=60, settle=0, clock=clock)
    await alerter.start()
    alerter.emit(sample_alerts()[0])
    await until(lambda: alerter.stats().send_failures == 1, "the refused connection")
    assert "ClientConnectorError" in caplog.text and URL_TOKEN not in caplog.text
    await late.start(port)
    try:
        clock.advance(60)
        await until(lambda: late.requests, "the retry")
        await alerter.close()
    finally:
        await late.stop()
    assert len(late.requests) == 1 and late.requests[0].body["total"] == 1


async def test_smtp_mail(smtp_server: tuple[Controller, MailRecorder]) -> None:
    controller, recorder = smtp_server
    await deliver(smtp_sink(controller))
    (mail_from, rcpt, msg), = recorder.mails
    assert mail_from == "sekisho@gw.example"
    assert rcpt == ["sec@example.com", "ops@example.com"]
    assert msg["Subject"] == "[Sekisho] 3 alerts: lockout (2), attack_mode (1)"
    assert msg["To"] == "sec@example.com, ops@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    text = part(msg, "plain")
    html = part(msg, "html")
    assert "lockout" in text and "attack_mode" in text
    assert "account: alice" in text and "failures: 5" in text
    assert "[x](https://evil.example) &lt;b&gt;</li>" in html  # the attacker's tag, escaped


async def test_smtp_starttls_login_with_password_file(
    tmp_path: Path, tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture,
) -> None:
    cert, key = tls_files
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    recorder = MailRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port(),
                            tls_context=server_tls, require_starttls=True,
                            authenticator=recorder.authenticate, auth_require_tls=True)
    controller.start()
    try:
        (tmp_path / "pw").write_text(SMTP_PASSWORD + "\n")
        settings = AlertSettings.model_validate({"smtp": {
            "host": "127.0.0.1", "port": controller.port, "security": "starttls",
            "username": "sekisho", "password_file": str(tmp_path / "pw"),
            "from": "sekisho@gw.example", "to": ["sec@example.com"], "ca_file": str(cert)}})
        await deliver(*create_sinks(settings))
        assert recorder.logins == ["sekisho"] and len(recorder.mails) == 1
        # A wrong password: logged by its SMTP code, the password never.
        (tmp_path / "pw").write_text("CANARY-wrong-pw\n")
        with caplog.at_level(logging.WARNING, logger="sekisho.alerts"):
            alerter = await deliver(*create_sinks(settings))
        assert alerter.stats().send_failures == 1
        assert "smtp 127.0.0.1" in caplog.text and "SMTP 535" in caplog.text
        assert "CANARY" not in caplog.text
    finally:
        controller.stop()


async def test_au03_secret_fields_are_refused_and_never_reach_a_sink(
    receiver: WebhookReceiver, smtp_server: tuple[Controller, MailRecorder],
    caplog: pytest.LogCaptureFixture,
) -> None:
    controller, recorder = smtp_server
    alerter = Alerter(sinks=[WebhookSink(url=receiver.url()), smtp_sink(controller),
                             *create_sinks(AlertSettings())], interval=0.2)
    await alerter.start()
    with caplog.at_level(logging.DEBUG):
        for name in ("password", "attempted_password", "totp_code", "code", "reset_token",
                     "session_id", "secret", "otp"):
            with pytest.raises(InvalidAlert) as info:
                alerter.emit(Alert(kind="lockout", severity="warning", title="t", summary="",
                                   fields={"account": "alice", name: CANARY}))
            assert CANARY not in str(info.value)
        alerter.emit(sample_alerts()[0])
        await alerter.close()
    assert len(receiver.requests) == 1 and len(recorder.mails) == 1
    everything = [r.raw for r in receiver.requests] + [m.as_string() for _, _, m in
                                                       recorder.mails] + [caplog.text]
    assert not [text for text in everything if CANARY in text]
    assert "alert digest: 1 alert: lockout (1)" in caplog.text  # the log sink
