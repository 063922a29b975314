"""What the change-password page shows besides the form: the result of a change (PW-14) and
the strength estimate (zxcvbn feedback), translated."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from sekisho.auth.strength import MAX_EVALUATED, Strength
from sekisho.gateway.i18n import translate

__all__ = ["changed_notice", "result_query", "strength_view"]

_MAX_COUNT_DIGITS = 6


def result_query(*, end_others: bool, ended: int) -> str:
    """The query of the page shown after a change: how many other sessions ended, or that
    they were kept."""
    return f"changed=1&ended={ended}" if end_others else "changed=1&kept=1"


def changed_notice(request: Request, lang: str) -> tuple[str, int | None]:
    """The notice for :func:`result_query`'s query, and the count of sessions ended (None
    when kept or not said). Only a count is read back from the link, never text."""
    params = request.query_params
    if params.get("changed") != "1":
        return "", None
    text = translate(lang, "password.changed")
    ended = params.get("ended", "")
    if ended.isascii() and ended.isdigit() and len(ended) <= _MAX_COUNT_DIGITS:
        count = int(ended)
        return f"{text} {translate(lang, 'password.changed_ended').format(n=count)}", count
    if params.get("kept") == "1":
        return f"{text} {translate(lang, 'password.changed_kept')}", None
    return text, None


def strength_view(strength: Strength | None, lang: str) -> dict[str, Any] | None:
    if strength is None:
        return None
    messages = [c[5:] if c.startswith("text:") else translate(lang, f"password.zx.{c}")
                for c in strength.codes]
    return {"score": strength.score, "label": translate(lang, f"password.score.{strength.score}"),
            "messages": messages, "truncated": strength.truncated, "evaluated": MAX_EVALUATED}
