"""``sekisho admin``: tools for the admin side. ``api-token`` makes a bearer token for the admin
API (docs/admin-api.md): it prints the token once — nothing keeps it — and the digest line
to add under ``[admin]``. The gateway stores and compares only SHA-256 digests."""

from __future__ import annotations

import argparse
import hashlib
import secrets

from sekisho.config import Settings

__all__ = ["new_api_token", "register"]

TOKEN_BYTES = 32


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``admin`` command and its subcommands to the main CLI."""
    admin = sub.add_parser("admin", help="admin API tokens")
    cmds = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    token = cmds.add_parser(
        "api-token", help="print a new admin API bearer token and its config line")
    token.set_defaults(func=_api_token, needs_settings=False)


def new_api_token() -> tuple[str, str]:
    """A new random token (256 bits, URL-safe) and its SHA-256 digest in hex."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, hashlib.sha256(token.encode("utf-8")).hexdigest()


def _api_token(args: argparse.Namespace, settings: Settings | None) -> int:
    token, digest = new_api_token()
    print("New admin API token (shown once; keep it in your client's secret store):")
    print(f"  {token}")
    print()
    print("Add its digest to the settings file, then restart the gateway:")
    print("  [admin]")
    print(f'  api_token_sha256 = ["{digest}"]')
    print("(append it to the list if there is one already; remove it there to revoke)")
    print(f"Actions with this token are audited as api-token:{digest[:8]}")
    return 0
