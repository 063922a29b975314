"""The login page in attack mode in a real browser: Debian's Chromium, driven by Playwright,
runs static/altcha-solver.js under the gateway's real CSP, solves the challenge and signs in
(issue 3 items 4 and 8). A low difficulty keeps it fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import require_service
from tests.integration.attack_stack import Gateways, attack_gateways, trip
from tests.integration.stack import PASSWORD

CHROMIUM = "/usr/bin/chromium"


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
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    with attack_gateways(db_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}",
                         state_url="memory://") as running:
        # Playwright's sync API keeps an event loop on this thread: seed from another one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(running.stacks[0].add_user, "alice", PASSWORD).result()
        trip(running.stacks[0])
        yield running


def open_login(browser: Any, gateways: Gateways, *, init_script: str = "",
               **context: Any) -> tuple[Any, list[str]]:
    """A fresh browser (context) on the login page; console errors are collected (a CSP
    violation, a worker that fails to load, a script error)."""
    page = browser.new_context(**context).new_page()
    if init_script:
        page.add_init_script(init_script)
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))  # not the gateway's
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"http://localhost:{gateways.stacks[0].port}/_sekisho/login?next=/")
    return page, errors


def test_the_solver_solves_and_the_login_goes_through(browser: Any, gateways: Gateways) -> None:
    """Submitted at once: the page says it is checking the browser, waits for the solution
    (found in Web Workers under the CSP), then sends it; one password hash, one session."""
    page, errors = open_login(browser, gateways)
    try:
        assert page.locator("#altcha-status").is_visible()
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        before = gateways.hashes
        with page.expect_navigation(url="**/"):
            page.click("button[type=submit]")
        assert '"path": "/"' in page.content()  # the upstream answered, with a session
        assert gateways.hashes == before + 1
        assert errors == []
    finally:
        page.context.close()


def test_the_page_says_what_it_does(browser: Any, gateways: Gateways) -> None:
    """The notice and the status line, in Japanese too; the solution is found in workers
    (not on the page) and lands in the hidden field before anyone submits."""
    page, errors = open_login(browser, gateways, locale="ja-JP",
                              extra_http_headers={"accept-language": "ja"})
    try:
        page.wait_for_selector("form[data-altcha-took]")
        assert page.locator("#altcha-status").inner_text() == "ブラウザーの確認が完了しました。"
        assert "不審なログインが増えているため" in page.locator("[data-altcha-show]").inner_text()
        assert page.get_attribute("form", "data-altcha-mode") is None  # workers did it
        assert page.input_value("input[name=altcha]")
        assert errors == []
    finally:
        page.context.close()


def test_without_javascript_the_page_explains(browser: Any, gateways: Gateways) -> None:
    page, _ = open_login(browser, gateways, java_script_enabled=False)
    try:
        text = page.locator("main").inner_text()
        assert "needs JavaScript to check your browser" in text
        assert not page.locator("#altcha-status").is_visible()
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        assert "has to be checked" in page.locator("main").inner_text()
    finally:
        page.context.close()


def test_without_workers_the_page_solves_in_slices(browser: Any, gateways: Gateways) -> None:
    """No Web Worker (an old browser, a stricter policy): the page solves on its main thread,
    a slice at a time, and the login still goes through."""
    page, errors = open_login(browser, gateways, init_script="delete window.Worker;")
    try:
        page.wait_for_selector("form[data-altcha-took]")
        assert page.get_attribute("form", "data-altcha-mode") == "page"
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        with page.expect_navigation(url="**/"):
            page.click("button[type=submit]")
        assert '"path": "/"' in page.content()
        assert errors == []
    finally:
        page.context.close()
