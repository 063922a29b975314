"""How a :class:`Digest` reads in each destination: plain JSON, Slack Block Kit, a Teams
Adaptive Card, and a text + HTML mail.

Alert text may carry attacker-chosen strings (an attempted username), already stripped of
control characters by :class:`Alert`; here each format escapes its own markup (Slack's
``&<>``, Teams markdown, HTML), so such a string cannot become a mention, a link or a tag.
"""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from sekisho.audit.alerts import Alert, Digest, iso

__all__ = ["headline", "render_json", "render_mail", "render_slack", "render_teams"]

JSON_VERSION = 1
_ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
_TEAMS_COLOURS = {"info": "default", "warning": "warning", "critical": "attention"}
_SLACK_MAX_BLOCKS = 50  # Slack refuses a message with more
_SLACK_MAX_TEXT = 3000
_SLACK_MAX_FIELDS = 10
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()#>~|<])")


def headline(digest: Digest) -> str:
    """``"3 alerts: lockout (2), attack_mode (1)"``; kinds and numbers only."""
    noun = "alert" if digest.total == 1 else "alerts"
    kinds = ", ".join(f"{kind} ({n})" for kind, n in digest.ranked_counts())
    return f"{digest.total} {noun}: {kinds}"


def _tail(digest: Digest, *, shown: int | None = None) -> str | None:
    parts = []
    more = digest.total - (len(digest.alerts) if shown is None else shown)
    if more:
        parts.append(f"and {more} more not shown")
    if digest.dropped:
        parts.append(f"{digest.dropped} of them dropped from a full queue")
    return "; ".join(parts) or None


def _period(digest: Digest) -> str:
    first, last = iso(digest.first_at), iso(digest.last_at)
    return first if first == last else f"{first} to {last}"


def render_json(digest: Digest) -> dict[str, Any]:
    """A plain document for a generic receiver (a SIEM, a script)."""
    return {
        "source": "sekisho",
        "version": JSON_VERSION,
        "headline": headline(digest),
        "severity": digest.severity,
        "total": digest.total,
        "shown": len(digest.alerts),
        "more": digest.more,
        "dropped": digest.dropped,
        "counts": dict(digest.ranked_counts()),
        "first_at": iso(digest.first_at),
        "last_at": iso(digest.last_at),
        "alerts": [alert.as_dict() for alert in digest.alerts],
    }


def _slack(text: str, limit: int = _SLACK_MAX_TEXT) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_alert(alert: Alert) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _slack(
            f"{_ICONS[alert.severity]} *{alert.title}*  `{alert.kind}`  {iso(alert.occurred_at)}"
            + (f"\n{alert.summary}" if alert.summary else ""))},
    }
    fields = [{"type": "mrkdwn", "text": _slack(f"*{name}*\n{value}", 2000)}
              for name, value in list(alert.fields.items())[:_SLACK_MAX_FIELDS]]
    if fields:
        block["fields"] = fields
    return block


def render_slack(digest: Digest) -> dict[str, Any]:
    """Slack Block Kit: ``text`` (the notification line) and ``blocks``."""
    counts = "\n".join(f"*{kind}*: {n}" for kind, n in digest.ranked_counts())
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _slack(
            f"Sekisho: {digest.total} alert{'s' if digest.total != 1 else ''}", 150)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack(counts)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack(_period(digest))}]},
        {"type": "divider"},
    ]
    shown = digest.alerts[: _SLACK_MAX_BLOCKS - len(blocks) - 1]
    blocks += [_slack_alert(alert) for alert in shown]
    tail = _tail(digest, shown=len(shown))
    if tail:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack(tail)}]})
    return {"text": _slack(f"Sekisho: {headline(digest)}"), "blocks": blocks}


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _teams_alert(alert: Alert) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": _md(alert.title), "weight": "Bolder", "wrap": True,
         "color": _TEAMS_COLOURS[alert.severity]},
        {"type": "TextBlock", "text": f"{alert.kind} · {iso(alert.occurred_at)}",
         "isSubtle": True, "spacing": "None", "wrap": True},
    ]
    if alert.summary:
        items.append({"type": "TextBlock", "text": _md(alert.summary), "wrap": True})
    if alert.fields:
        items.append({"type": "FactSet", "facts": [
            {"title": name, "value": _md(str(value))} for name, value in alert.fields.items()]})
    return {"type": "Container", "separator": True, "items": items}


def render_teams(digest: Digest) -> dict[str, Any]:
    """A message with one Adaptive Card attachment, as Teams workflow webhooks take it."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
         "text": f"Sekisho: {digest.total} alert{'s' if digest.total != 1 else ''}"},
        {"type": "TextBlock", "text": _period(digest), "isSubtle": True, "wrap": True},
        {"type": "FactSet", "facts": [
            {"title": kind, "value": str(n)} for kind, n in digest.ranked_counts()]},
    ]
    body += [_teams_alert(alert) for alert in digest.alerts]
    tail = _tail(digest)
    if tail:
        body.append({"type": "TextBlock", "text": tail, "isSubtle": True, "wrap": True})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "msteams": {"width": "Full"},
            "body": body}
    return {"type": "message", "summary": f"Sekisho: {headline(digest)}", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
         "content": card}]}


def _text_body(digest: Digest) -> str:
    lines = [f"Sekisho: {headline(digest)}", f"Period: {_period(digest)}", "", "Counts by kind:"]
    lines += [f"  {kind:<28} {n:>7}" for kind, n in digest.ranked_counts()]
    for alert in digest.alerts:
        lines += ["", f"[{alert.severity}] {alert.kind}: {alert.title}",
                  f"  at {iso(alert.occurred_at)}"]
        lines += [f"  {line}" for line in alert.summary.splitlines()]
        lines += [f"  {name}: {value}" for name, value in alert.fields.items()]
    tail = _tail(digest)
    if tail:
        lines += ["", f"... {tail}."]
    return "\n".join(lines) + "\n"


def _html_body(digest: Digest) -> str:
    e = html.escape
    rows = "".join(f"<tr><td>{e(kind)}</td><td align=\"right\">{n}</td></tr>"
                   for kind, n in digest.ranked_counts())
    parts = [f"<h2>Sekisho: {e(headline(digest))}</h2>", f"<p>{e(_period(digest))}</p>",
             f"<table><tr><th>Kind</th><th>Count</th></tr>{rows}</table>"]
    for alert in digest.alerts:
        facts = "".join(f"<li><b>{e(name)}</b>: {e(str(value))}</li>"
                        for name, value in alert.fields.items())
        parts.append(
            f"<h3>[{e(alert.severity)}] {e(alert.kind)}: {e(alert.title)}</h3>"
            f"<p>{e(iso(alert.occurred_at))}</p><p>{e(alert.summary)}</p><ul>{facts}</ul>")
    tail = _tail(digest)
    if tail:
        parts.append(f"<p>… {e(tail)}.</p>")
    return "<html><body>" + "".join(parts) + "</body></html>"


def render_mail(
    digest: Digest, *, sender: str, to: list[str], subject_prefix: str
) -> EmailMessage:
    """One multipart/alternative mail; the subject has the count and the kinds."""
    msg = EmailMessage()
    subject = f"{subject_prefix} {headline(digest)}".strip()
    msg["Subject"] = subject if len(subject) <= 200 else subject[:199] + "…"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(_text_body(digest))
    msg.add_alternative(_html_body(digest), subtype="html")
    return msg
