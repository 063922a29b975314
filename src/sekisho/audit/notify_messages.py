"""The security notices users receive by e-mail (AU-06): what they say, in English then
Japanese, in one plain-text message.

A :class:`Notice` carries only what a notice may say: its kind, when, the client address,
a device label ("Firefox / Linux", never the raw User-Agent: that is text an attacker
chooses), the audit reference and a few *facts* from a fixed list (a factor name, counts,
flags). Nothing else can be put in, so no password, code, token or session id can reach a
mail whatever the caller passes. Every message ends with what to do if it wasn't you: the
Security page link and the contact configured in ``[notifications] contact``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from types import MappingProxyType

__all__ = ["KINDS", "Notice", "device_of", "render"]

JST = timezone(timedelta(hours=9), "JST")
Facts = Mapping[str, str | int | bool]

#: Every kind of notice, with the audit event it answers (docs/notifications.md lists them).
KINDS: dict[str, str] = {
    "authenticator_bound": "authn_factor_bound:totp|passkey",
    "authenticator_removed": "authn_factor_removed:totp|passkey",
    "password_changed": "authn_password_change",
    "password_reset": "authn_password_reset",
    "recovery_codes_regenerated": "authn_recovery_codes_regenerated",
    "recovery_code_used": "authn_recovery_code_used",
    "self_unlock": "authz_change:selfunlock",
    "admin_unlock": "authz_admin (lockout.unlock)",
    "totp_code_reused": "authn_token_reuse:totp",
}
_FACTORS = {"totp": ("authenticator app (TOTP)", "認証アプリ（TOTP）"),
            "passkey": ("passkey", "パスキー"), "password": ("password", "パスワード"),
            "recovery": ("recovery codes", "回復コード"), "other": ("sign-in", "サインイン")}
_FACT_KINDS: dict[str, type] = {"factor": str, "via": str, "replaced": bool, "remaining": int,
                                "count": int, "sessions_ended": int, "sessions_kept": bool}
_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("Chrome/", "Chrome"), ("Chromium/", "Chromium"), ("Safari/", "Safari"),
             ("curl/", "curl"))
_SYSTEMS = (("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS"),
            ("iPad", "iPadOS"), ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"),
            ("Linux", "Linux"))
_UNSAFE = re.compile(r"[^\w.@+-]")
_UNSAFE_LABEL = re.compile(r"[^\w #:./-]")


def device_of(user_agent: str | None) -> str | None:
    """A label for people from a User-Agent, built only from known names."""
    if not user_agent:
        return None
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), "")
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), "")
    return " / ".join(part for part in (browser, system) if part) or None


def _ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str
    user_id: int
    when: datetime
    client_ip: str | None = None
    device: str | None = None
    facts: Facts = field(default_factory=dict)
    reference: str | None = None  # "audit #123": what the helpdesk looks up

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown notice kind {self.kind[:40]!r}")
        if self.when.tzinfo is None:
            raise ValueError("when must carry a timezone")
        facts: dict[str, str | int | bool] = {}
        for name, value in self.facts.items():
            wanted = _FACT_KINDS.get(name)
            if wanted is None or type(value) is not wanted:
                raise ValueError(f"notice fact {name[:40]!r} is not one a notice may carry")
            facts[name] = value if wanted is not str or value in _FACTORS else "other"
        set_ = object.__setattr__
        set_(self, "facts", MappingProxyType(facts))
        set_(self, "client_ip", _ip(self.client_ip))
        # Labels made by device_of and "audit #12"; anything else is cut down to plain text.
        for name in ("device", "reference"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _UNSAFE_LABEL.sub(" ", value)[:40])


def _factor(facts: Facts, lang: int, name: str = "factor") -> str:
    return _FACTORS[str(facts.get(name, "other"))][lang]


# kind -> (English, Japanese) builders: (headline, sentence).
Text = Callable[[Facts], tuple[str, str]]


def _bound_en(f: Facts) -> tuple[str, str]:
    if f.get("factor") == "passkey":
        return "A passkey was added", "A new passkey was registered for your account."
    if f.get("replaced"):
        return ("Your authenticator app was replaced", "The authenticator app (TOTP) of "
                "your account was replaced. Codes from the previous app no longer work.")
    return ("An authenticator app was added",
            "An authenticator app (TOTP) was set up for signing in to your account.")


def _bound_ja(f: Facts) -> tuple[str, str]:
    if f.get("factor") == "passkey":
        return "パスキーが登録されました", "アカウントに新しいパスキーが登録されました。"
    if f.get("replaced"):
        return ("認証アプリが置き換えられました", "アカウントの認証アプリ（TOTP）が置き換え"
                "られました。以前のアプリのコードは使えなくなりました。")
    return ("認証アプリが登録されました",
            "アカウントのサインインに使う認証アプリ（TOTP）が設定されました。")


def _ended(f: Facts, lang: int) -> str:
    if f.get("sessions_kept"):  # PW-14: the user chose to stay signed in elsewhere
        return (" Your other sessions were not signed out.",
                "他のセッションはサインアウトされていません。")[lang]
    n = int(f.get("sessions_ended", 0))
    if not n:
        return ""
    return (f" {n} other session(s) were signed out.",
            f"他の {n} 件のセッションはサインアウトされました。")[lang]


def _via(f: Facts, lang: int) -> str:
    if f.get("via") == "passkey":
        return ("a sign-in with a passkey", "パスキーによるサインイン")[lang]
    return ("a sign-in with your password and a recovery code",
            "パスワードと回復コードによるサインイン")[lang]


_TEXTS: dict[str, tuple[Text, Text]] = {
    "authenticator_bound": (_bound_en, _bound_ja),
    "authenticator_removed": (
        lambda f: ("A passkey was removed" if f.get("factor") == "passkey"
                   else "An authenticator app was removed",
                   f"The {_factor(f, 0)} was removed from your account; it no longer "
                   "signs you in."),
        lambda f: (f"{_factor(f, 1)}が削除されました",
                   f"アカウントから{_factor(f, 1)}が削除されました。"
                   "これではサインインできなくなりました。")),
    "password_changed": (
        lambda f: ("Your password was changed",
                   "The password of your account was changed." + _ended(f, 0)),
        lambda f: ("パスワードが変更されました",
                   "アカウントのパスワードが変更されました。" + _ended(f, 1))),
    "password_reset": (
        lambda f: ("Your password was reset", "The password of your account was reset."),
        lambda f: ("パスワードがリセットされました",
                   "アカウントのパスワードがリセットされました。")),
    "recovery_codes_regenerated": (
        lambda f: ("New recovery codes were created", "A new set of recovery codes was "
                   "created for your account. Every earlier code no longer works."),
        lambda f: ("回復コードが再発行されました", "アカウントの回復コードが新しく発行されました。"
                   "以前のコードはすべて使えなくなりました。")),
    "recovery_code_used": (
        lambda f: ("A recovery code was used", "A recovery code was used to sign in to your "
                   f"account (account recovery). {f.get('remaining', 0)} unused code(s) "
                   "remain."),
        lambda f: ("回復コードが使用されました", "回復コードを使ってアカウントにサインインしました"
                   f"（アカウントの回復）。未使用のコードは残り {f.get('remaining', 0)} 個です。")),
    "self_unlock": (
        lambda f: ("Your account was unlocked", "The sign-in locks on your account were "
                   f"lifted by {_via(f, 0)}."),
        lambda f: ("アカウントのロックが解除されました",
                   f"{_via(f, 1)}により、アカウントのサインイン制限が解除されました。")),
    "admin_unlock": (
        lambda f: ("An administrator unlocked your account", "An administrator lifted the "
                   f"lock on your {_factor(f, 0)} after repeated failed sign-in attempts."),
        lambda f: ("管理者がアカウントのロックを解除しました", "サインインの失敗が続いたため"
                   f"にかかっていた{_factor(f, 1)}のロックを、管理者が解除しました。")),
    "totp_code_reused": (
        lambda f: ("A sign-in code was used twice", "A code from your authenticator app was "
                   "entered a second time and refused. Someone else may have seen the code, "
                   "for example on a fake sign-in page."),
        lambda f: ("確認コードが再使用されました", "認証アプリのコードが2回入力されたため、"
                   "2回目を拒否しました。偽のサインインページなどで第三者がコードを入手した"
                   "可能性があります。")),
}

_INTRO = ("Sekisho security notice for your account \"{user}\":",
          "Sekisho からのお知らせ（アカウント「{user}」）:")
_LABELS = (("When", "From", "Reference"), ("日時", "接続元", "参照番号"))
_ADVICE = (
    "If this was you, there is nothing to do.\n\n"
    "If this wasn't you, someone else may be using your account:\n"
    "  1. Sign in at {security} now, change your password, and choose\n"
    "     \"Sign out everywhere else\" on the Security page.\n"
    "  2. Tell this contact that you did not do this, quoting the reference\n"
    "     above (also if you cannot sign in):\n"
    "     {contact}\n\n"
    "Sekisho never asks for your password or codes by e-mail or phone, and this\n"
    "message contains none. Please do not reply to it.",
    "ご自身の操作であれば、対応は不要です。\n\n"
    "お心当たりがない場合は、第三者があなたのアカウントを使っているおそれがあります。\n"
    "  1. すぐに {security} にサインインしてパスワードを変更し、\n"
    "     セキュリティページで「他のすべての端末からログアウト」を選んでください。\n"
    "  2. 次の連絡先に、この操作に心当たりがないことを上の参照番号とともに\n"
    "     お伝えください（サインインできない場合も）。\n"
    "     {contact}\n\n"
    "Sekisho がメールや電話でパスワードやコードを尋ねることはありません。\n"
    "このメールにも含まれていません。このメールには返信しないでください。",
)


def _when(moment: datetime, lang: int) -> str:
    utc, jst = moment.astimezone(UTC), moment.astimezone(JST)
    if lang == 0:
        return f"{utc:%Y-%m-%d %H:%M:%S} UTC ({jst:%H:%M:%S} JST)"
    return f"{jst:%Y年%m月%d日 %H:%M:%S} JST（{utc:%H:%M:%S} UTC）"


def _section(notices: Sequence[Notice], *, lang: int, user: str, security: str,
             contact: str) -> str:
    labels = _LABELS[lang]
    lines = [_INTRO[lang].format(user=user), ""]
    for notice in notices:
        sentence = _TEXTS[notice.kind][lang](notice.facts)[1]
        lines.append(f"- {sentence}")
        lines.append(f"  {labels[0]}: {_when(notice.when, lang)}")
        origin = ", ".join(p for p in (notice.client_ip, notice.device) if p)
        if origin:
            lines.append(f"  {labels[1]}: {origin}")
        if notice.reference:
            lines.append(f"  {labels[2]}: {notice.reference}")
    lines += ["", _ADVICE[lang].format(security=security, contact=contact)]
    return "\n".join(lines)


def subject(notices: Sequence[Notice], prefix: str) -> str:
    if len(notices) == 1:
        kind, facts = notices[0].kind, notices[0].facts
        en, ja = _TEXTS[kind][0](facts)[0], _TEXTS[kind][1](facts)[0]
    else:
        en = f"{len(notices)} security changes to your account"
        ja = f"アカウントに {len(notices)} 件のセキュリティ上の変更がありました"
    return f"{prefix} {en} / {ja}".strip()


def render(notices: Sequence[Notice], *, username: str, to: Sequence[str], sender: str,
           contact: str, portal_url: str, subject_prefix: str = "[Sekisho]") -> EmailMessage:
    """One message for one user's notices (English, then Japanese)."""
    if not notices:
        raise ValueError("nothing to render")
    user = _UNSAFE.sub("?", username)[:64]
    security = f"{portal_url}/security"
    body = "\n\n".join([
        _section(notices, lang=0, user=user, security=security, contact=contact),
        "-" * 60 + "\n（日本語）",
        _section(notices, lang=1, user=user, security=security, contact=contact),
    ])
    msg = EmailMessage()
    msg["Subject"] = subject(notices, subject_prefix)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(max(n.when for n in notices).astimezone(UTC))
    msg["Message-ID"] = make_msgid("sekisho", domain=sender.rpartition("@")[2] or None)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg.set_content(body + "\n", charset="utf-8")
    return msg
