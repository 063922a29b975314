"""Real-browser fixtures: Debian's Chromium driven by Playwright (sync API), headless, against
a real uvicorn gateway stack served as ``http://localhost:<port>`` (WebAuthn allows plain
http only on localhost; the stack's RP ID is ``localhost``).

- ``gateway``: one stack per module (memory + SQLite) on a controllable clock; tests add
  their own users, so they do not depend on each other's state.
- ``browser``: one Chromium per module.
- ``page``: a fresh context (cookies) and page per test; ``authenticator(page)`` attaches a
  CDP virtual authenticator (CTAP2, internal, resident keys, user verification) to it.
- ``shots``: where screenshots go: ``docs/images`` when ``SEKISHO_SCREENSHOTS=1`` (to refresh
  the user guide), else the test's tmp dir, so a normal test run leaves the tree clean.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_service
from tests.integration.mfa_portal import Clock
from tests.integration.stack import Stack, running_stack

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]


class Gateway:
    def __init__(self, stack: Stack, clock: Clock) -> None:
        self.stack = stack
        self.clock = clock
        self.base = f"http://localhost:{stack.port}"

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    clock = Clock()
    db = tmp_path_factory.mktemp("browser") / "gw.sqlite3"
    with running_stack(db_url=f"sqlite:///{db}", state_url="memory://", clock=clock,
                       mfa={"required_groups": ["secure"]}) as stack:
        yield Gateway(stack, clock)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_service("Chromium", os.path.exists(CHROMIUM), CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="en-US", viewport={"width": 1000, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page_ja(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="ja-JP", extra_http_headers={
        "accept-language": "ja,en;q=0.5"}, viewport={"width": 1000, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def authenticator(page: Any) -> tuple[Any, str]:
    """A CDP virtual authenticator on ``page``: (cdp session, authenticator id)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    if os.environ.get("SEKISHO_SCREENSHOTS") == "1":
        target = REPO / "docs" / "images"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path


def oathtool_available() -> None:
    require_service("oathtool", shutil.which("oathtool") is not None)
