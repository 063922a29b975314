"""A tiny upstream app for `sekisho demo`: it shows the identity the gateway sent it.

Pure ASGI on purpose: it stands for any intranet app and knows nothing of Sekisho.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import unquote

Scope = dict[str, Any]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo intranet app</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.35rem;text-align:left}}
th{{color:#5b6575;font-weight:600}} .who{{font-size:1.3rem}}
code{{background:#f1f2f4;padding:0 .25rem}}
</style></head><body>
<h1>Demo intranet app</h1>
<p class="who">Hello, <strong>{name}</strong> (<code>{user}</code>).</p>
<p>This app has no login of its own. Sekisho authenticated you and told it who you are:</p>
<table><tr><th>Header</th><th>Value</th></tr>{identity}</table>
<h2>Everything this app received</h2>
<table><tr><th>Header</th><th>Value</th></tr>{all}</table>
<p>Sign out from the <a href="/_sekisho/">Sekisho account page</a>.</p>
</body></html>
"""

IDENTITY = ("remote-user", "remote-groups", "remote-email", "remote-name")


def _rows(items: list[tuple[str, str]]) -> str:
    return "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(v)}</td></tr>"
        for k, v in items
    )


async def demo_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] != "http":
        return
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    found = dict(headers)
    body = _PAGE.format(
        name=html.escape(unquote(found.get("remote-name", "")) or found.get("remote-user", "?")),
        user=html.escape(found.get("remote-user", "(none)")),
        identity=_rows([(k, found.get(k, "(absent)")) for k in IDENTITY]),
        all=_rows(sorted(headers)),
    ).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ],
    })
    await send({"type": "http.response.body", "body": body})
