"""Where digests go: a webhook (JSON, Slack or Teams), SMTP, and the log.

Every sink names itself for logs by scheme and host only: a Slack or Teams webhook URL is
itself a credential, and aiohttp's errors would quote it, so they are translated here and
not chained (``from None``).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from sekisho.audit.alert_formats import (
    headline,
    render_json,
    render_mail,
    render_slack,
    render_teams,
)
from sekisho.audit.alerts import AlertDeliveryError, AlertSink, Digest
from sekisho.audit.smtp import SmtpServer, load_ssl_context, read_secret_file
from sekisho.config.alerts import AlertSettings, SmtpSettings, WebhookSettings, check_webhook_url
from sekisho.errors import ConfigError

__all__ = ["LogSink", "SmtpSink", "WebhookSink", "create_sinks"]

log = logging.getLogger("sekisho.alerts")

WebhookFormat = Literal["json", "slack", "teams"]
_RENDER: dict[str, Callable[[Digest], dict[str, Any]]] = {
    "json": render_json, "slack": render_slack, "teams": render_teams}
USER_AGENT = "sekisho-alerts/1"


class WebhookSink:
    """POSTs each digest as JSON over one long-lived aiohttp session. Redirects are not
    followed (a webhook that redirects is misconfigured, and headers must not travel)."""

    def __init__(
        self, *, url: str, format: WebhookFormat = "json", timeout: float = 10.0,
        headers: Mapping[str, str] | None = None, ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._url = url
        self._render = _RENDER[format]
        self._timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self.format = format
        self._name = f"webhook {parts.scheme}://{parts.hostname}" + (
            f":{parts.port}" if parts.port else "")

    @property
    def name(self) -> str:
        return self._name

    async def send(self, digest: Digest) -> None:
        if self._session is None or self._session.closed:
            # Created here, inside the running loop, and kept for the process's lifetime.
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=aiohttp.ClientTimeout(total=self._timeout))
        try:
            async with self._session.post(
                self._url, json=self._render(digest), allow_redirects=False, ssl=self._ssl,
            ) as resp:
                status = resp.status  # the body is not needed: leaving releases it
        except TimeoutError:
            raise AlertDeliveryError(f"{self.name}: no answer in {self._timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise AlertDeliveryError(f"{self.name}: {type(exc).__name__}") from None
        if not 200 <= status < 300:
            raise AlertDeliveryError(f"{self.name}: answered HTTP {status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SmtpSink:
    """Sends each digest as one text + HTML mail with the stdlib ``smtplib``, in a worker
    thread (``asyncio.to_thread``) so the event loop never waits on the mail server."""

    def __init__(
        self, *, host: str, port: int, sender: str, to: Sequence[str],
        security: Literal["starttls", "ssl", "none"] = "starttls",
        username: str | None = None, password: str | None = None, timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None, subject_prefix: str = "[Sekisho]",
    ) -> None:
        self._server = SmtpServer(host=host, port=port, security=security, username=username,
                                  password=password, timeout=timeout, ssl_context=ssl_context)
        self._sender, self._to = sender, list(to)
        self._subject_prefix = subject_prefix

    @property
    def name(self) -> str:
        return self._server.name

    async def send(self, digest: Digest) -> None:
        msg = render_mail(digest, sender=self._sender, to=self._to,
                          subject_prefix=self._subject_prefix)
        await asyncio.to_thread(self._deliver, msg)

    async def close(self) -> None:
        """Nothing is kept open between digests."""

    def _deliver(self, msg: EmailMessage) -> None:
        try:
            refused = self._server.transact(msg, sender=self._sender, recipients=self._to)
        except smtplib.SMTPResponseException as exc:
            raise AlertDeliveryError(
                f"{self.name}: {type(exc).__name__} (SMTP {exc.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertDeliveryError(f"{self.name}: {type(exc).__name__}") from None
        if refused:
            log.warning("alerts: %s refused %d of %d recipients", self.name, len(refused),
                        len(self._to))


class LogSink:
    """One log line per digest: the count and the kinds, so digests are on record even when
    no other sink is configured or a sink is down."""

    name = "log"

    async def send(self, digest: Digest) -> None:
        log.warning("alert digest: %s%s", headline(digest),
                    f" ({digest.dropped} dropped)" if digest.dropped else "")

    async def close(self) -> None:
        """Nothing to close."""


def create_sinks(settings: AlertSettings) -> list[AlertSink]:
    """The sinks ``[alerts]`` asks for (always the log too), secret files read now.
    Raises ConfigError naming the key of an unreadable file."""
    if not settings.enabled:
        return []
    problems: list[str] = []
    sinks: list[AlertSink] = [LogSink()]
    if settings.webhook is not None:
        webhook = _webhook(settings.webhook, problems)
        if webhook is not None:
            sinks.append(webhook)
    if settings.smtp is not None:
        smtp = _smtp(settings.smtp, problems)
        if smtp is not None:
            sinks.append(smtp)
    if problems:
        raise ConfigError(problems)
    return sinks


def _webhook(cfg: WebhookSettings, problems: list[str]) -> WebhookSink | None:
    start = len(problems)
    key = "alerts.webhook"
    url = cfg.url.get_secret_value().strip() if cfg.url is not None else None
    if cfg.url_file is not None:
        url = read_secret_file(cfg.url_file, f"{key}.url_file", problems)
        if url is not None:
            try:
                url = check_webhook_url(url)
            except ValueError as exc:
                problems.append(f"{key}.url_file: the URL in it {exc}")
    headers = {name: value.get_secret_value() for name, value in cfg.headers.items()}
    for name, path in cfg.header_files.items():
        value = read_secret_file(path, f"{key}.header_files.{name}", problems)
        if value is not None:
            headers[name] = value
    context = load_ssl_context(cfg.ca_file, f"{key}.ca_file", problems) if cfg.ca_file else None
    if url is None or len(problems) > start:
        return None
    return WebhookSink(url=url, format=cfg.format, timeout=cfg.timeout, headers=headers,
                       ssl_context=context)


def _smtp(cfg: SmtpSettings, problems: list[str]) -> SmtpSink | None:
    start = len(problems)
    password = cfg.password.get_secret_value() if cfg.password is not None else None
    if cfg.password_file is not None:
        password = read_secret_file(cfg.password_file, "alerts.smtp.password_file", problems)
    context = load_ssl_context(cfg.ca_file, "alerts.smtp.ca_file", problems)
    if len(problems) > start or context is None:
        return None
    return SmtpSink(host=cfg.host, port=cfg.effective_port, security=cfg.security,
                    sender=cfg.sender, to=cfg.to, username=cfg.username, password=password,
                    timeout=cfg.timeout, ssl_context=context, subject_prefix=cfg.subject_prefix)
