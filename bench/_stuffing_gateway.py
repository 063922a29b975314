"""`sekisho serve`, exactly as the CLI runs it, plus one bench-only read-out.

    python bench/_stuffing_gateway.py -c gateway.toml serve

The CLI's ``main`` does everything (logging set-up, settings, secrets, uvicorn with the
production options); only ``create_app`` is wrapped, so the app answers
``GET /__bench/stats`` from 127.0.0.1 with the hasher's counters as JSON:
``{"hashes_computed": n, "pending": n}``. Every other request goes to the real app
untouched (the wrapper costs one dict lookup and a string compare per request).
The counter is ``Passwords.hashes_computed``: every Argon2 hash or verify, dummy ones included.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from sekisho.cli import main
from sekisho.cli import serve as serve_command

STATS_PATH = "/__bench/stats"
_real_create_app = serve_command.create_app


def _instrumented(settings: Any, *args: Any, **kwargs: Any) -> Any:
    app = _real_create_app(settings, *args, **kwargs)
    passwords = app.services.passwords

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        client = scope.get("client")
        if (scope["type"] == "http" and scope["path"] == STATS_PATH and client
                and client[0] == "127.0.0.1"):
            body = json.dumps({"hashes_computed": passwords.hashes_computed,
                               "pending": passwords.pending}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped


if __name__ == "__main__":
    serve_command.create_app = _instrumented  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
