"""The small pages the gateway itself answers with when a request cannot be proxied.

They never carry upstream detail (no exception text, no upstream address): what went wrong is
logged, the client gets only the status. Bodies are built once at import; sending one is two
ASGI messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from starlette.types import Send

_TEXT: dict[int, tuple[str, str, str]] = {
    400: ("Bad Request", "The request was malformed.", "リクエストが正しくありません。"),
    401: ("Unauthorized", "Please sign in.", "ログインしてください。"),
    403: (
        "Forbidden",
        "You do not have access to this page.",
        "このページへのアクセス権がありません。",
    ),
    404: ("Not Found", "There is nothing here.", "ページが見つかりません。"),
    421: (
        "Misdirected Request",
        "This server does not serve that host name.",
        "このサーバーはそのホスト名を扱いません。",
    ),
    502: (
        "Bad Gateway",
        "The application behind the gateway did not answer.",
        "アプリケーションが応答しませんでした。",
    ),
    503: (
        "Service Unavailable",
        "The service is busy. Please try again shortly.",
        "混み合っています。しばらくしてから再度お試しください。",
    ),
    504: (
        "Gateway Timeout",
        "The application behind the gateway took too long to answer.",
        "アプリケーションの応答がタイムアウトしました。",
    ),
}

_BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/html; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
)

_CLOSE = (b"connection", b"close")


def _render(status: int, title: str, en: str, ja: str) -> bytes:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{status} {escape(title)}</title></head>\n"
        f"<body><h1>{status} {escape(title)}</h1>\n<p>{escape(en)}</p>\n"
        f'<p lang="ja">{escape(ja)}</p></body></html>\n'
    ).encode()


_PAGES: dict[int, bytes] = {s: _render(s, *text) for s, text in _TEXT.items()}


def error_body(status: int) -> bytes:
    """The HTML page for ``status`` (a generic one for statuses without their own text)."""
    page = _PAGES.get(status)
    if page is None:
        page = _render(
            status, "Error", "The request could not be completed.", "エラーが発生しました。"
        )
    return page


async def send_error(
    send: Send, status: int, *, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with the page for ``status``. ``headers`` are added (e.g. ``Retry-After``).

    A 400 also closes the connection: after a malformed request the framing of whatever
    follows on that connection cannot be trusted."""
    body = error_body(status)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            *_BASE_HEADERS,
            (b"content-length", str(len(body)).encode("ascii")),
            *((_CLOSE,) if status == 400 else ()),
            *headers,
        ],
    })
    await send({"type": "http.response.body", "body": body})
