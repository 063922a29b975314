"""MFA in a real browser: Chromium with a CDP virtual authenticator for passkeys, the real
oathtool as the authenticator app, a real uvicorn gateway. The screenshots of the user guide
(docs/user-guide.md) come from here (``SEKISHO_SCREENSHOTS=1``)."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tests.browser.conftest import Gateway, authenticator, oathtool_available
from tests.integration.mfa_portal import oathtool
from tests.integration.stack import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.integration]
P = "/_sekisho"
_names = itertools.count(1)


def new_user(gw: Gateway, stem: str, *, groups: list[str] | None = None) -> str:
    name = f"{stem}{next(_names)}"
    # Playwright's sync API keeps an event loop running in this thread: add from another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(gw.stack.add_user, name, PASSWORD, groups=groups or ["staff"]).result()
    return name


def without_autofill(page: Any) -> None:
    """Make the page a browser without passkey autofill. The virtual authenticator answers a
    conditional request at once with its passkey, which would sign in by itself on every
    login page; tests of other paths switch autofill off."""
    page.add_init_script(
        "PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);")


def sign_in(page: Any, gw: Gateway, username: str, *, next_url: str = f"{P}/") -> None:
    page.goto(gw.url(f"{P}/login?prompt=login&next={next_url}"))
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state()


def sign_out(page: Any) -> None:
    page.click("nav form button")
    page.wait_for_url("**/login?logged_out=1")


def passkey_via_security_page(page: Any, gw: Gateway, name: str, shots: Path | None = None
                              ) -> list[str]:
    """Add a passkey from the Security page, then create recovery codes; the codes."""
    page.goto(gw.url(f"{P}/security"))
    page.click("#passkeys a.button")
    page.fill("#passkey-name", name)
    if shots:
        page.screenshot(path=shots / "passkey-setup.png")
    page.click("button[data-passkey-start]")
    page.wait_for_url("**/mfa/codes**")
    return create_codes(page, shots)


def create_codes(page: Any, shots: Path | None = None) -> list[str]:
    page.click("form[action$='/mfa/codes'] button[type=submit]")
    page.wait_for_selector("[data-recovery-codes]")
    if shots:
        page.screenshot(path=shots / "recovery-codes.png")
    codes: list[str] = page.locator("[data-recovery-codes] code").all_inner_texts()
    page.click("[data-continue]")
    page.wait_for_load_state()
    return codes


def totp_via_page(page: Any, gw: Gateway, shots: Path | None = None) -> tuple[str, list[str]]:
    """On the authenticator-app page: read the key as a person would, type oathtool's code."""
    page.wait_for_selector("[data-totp-key]")
    if shots:
        page.screenshot(path=shots / "totp-setup.png", full_page=True)
    key = page.inner_text("[data-totp-key]").replace(" ", "")
    page.fill("#code", oathtool(key, gw.clock.now))
    page.click("#totp-setup-form button[type=submit]")
    page.wait_for_url("**/mfa/codes**")
    codes = create_codes(page)
    gw.clock.advance(30)  # the enrolment code's step is spent
    return key, codes


def test_passkey_enrol_sign_out_then_passwordless(gateway: Gateway, page: Any,
                                                  shots: Path) -> None:
    """WA-03, WA-05, WA-09: register a passkey, then sign in with it and no password: first
    through autofill (conditional mediation, started as the login page loads; the virtual
    authenticator answers it at once), then, on a browser without autofill, with the
    button."""
    gw = gateway
    authenticator(page)
    user = new_user(gw, "pia")
    page.goto(gw.url(f"{P}/login"))
    assert page.get_attribute("#username", "autocomplete") == "username webauthn"
    page.screenshot(path=shots / "login.png")
    sign_in(page, gw, user)
    codes = passkey_via_security_page(page, gw, "Work laptop", shots)
    assert len(codes) == 10
    page.wait_for_url("**/security")
    assert page.locator("tr[data-passkey-id] input[name=name]").input_value() == "Work laptop"
    page.screenshot(path=shots / "security.png", full_page=True)
    sign_out(page)
    with page.expect_response("**/webauthn/login/verify") as verified:
        page.goto(gw.url(f"{P}/login?next={P}/"))  # autofill signs in by itself
    assert verified.value.status == 200, verified.value.text()
    page.wait_for_url(gw.url(f"{P}/"))
    assert user in page.inner_text("main")
    without_autofill(page)  # from now on only the button works
    sign_out(page)
    page.goto(gw.url(f"{P}/login?next={P}/"))
    page.click("button[data-passkey-start]")
    page.wait_for_url(gw.url(f"{P}/"))
    assert user in page.inner_text("main")


def test_password_then_passkey(gateway: Gateway, page: Any, shots: Path) -> None:
    """LF-06: the password first, then the passkey on the MFA page."""
    gw = gateway
    authenticator(page)
    without_autofill(page)
    user = new_user(gw, "paul")
    sign_in(page, gw, user)
    passkey_via_security_page(page, gw, "Security key")
    sign_out(page)
    sign_in(page, gw, user, next_url="/app/page")
    page.wait_for_url("**/mfa?next=/app/page")
    page.screenshot(path=shots / "mfa-verify-passkey.png")
    page.click("button[data-passkey-start]")
    page.wait_for_url(gw.url("/app/page"))
    assert "remote-user" in page.content().lower()


def test_totp_enrol_sign_in_and_replay(gateway: Gateway, page: Any, shots: Path) -> None:
    """TO-03, TO-05, TO-06: enrol from the page's key with oathtool; sign in with a code;
    the same code again is refused with a warning."""
    oathtool_available()
    gw = gateway
    user = new_user(gw, "tomo")
    sign_in(page, gw, user)
    page.goto(gw.url(f"{P}/security"))
    page.click("#totp a.button")
    key, _ = totp_via_page(page, gw, shots)
    sign_out(page)
    code = oathtool(key, gw.clock.now)
    sign_in(page, gw, user)
    page.wait_for_url("**/mfa?**")
    page.fill("#code", code)
    page.screenshot(path=shots / "mfa-verify-totp.png")
    page.click("#totp-form button[type=submit]")
    page.wait_for_url(gw.url(f"{P}/"))
    sign_out(page)
    sign_in(page, gw, user)
    page.fill("#code", code)
    page.click("#totp-form button[type=submit]")
    alert = page.locator("p.alert[data-error=totp]")
    assert "used already" in alert.inner_text()
    assert "/mfa" in page.url


def test_recover_with_a_recovery_code(gateway: Gateway, page: Any, shots: Path) -> None:
    """RC-05, RC-06: code plus password from the login page's link; then the Security page
    asks for re-enrolment."""
    oathtool_available()
    gw = gateway
    user = new_user(gw, "rei")
    sign_in(page, gw, user)
    page.goto(gw.url(f"{P}/mfa/totp/setup?next={P}/"))
    _, codes = totp_via_page(page, gw)
    sign_out(page)
    page.click("a[href$='/recover']")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.fill("#recovery-code", codes[0])
    page.screenshot(path=shots / "recover.png")
    page.click("form[action$='/recover'] button[type=submit]")
    page.wait_for_url("**/security?recovered=1")
    assert "You signed in with a recovery code" in page.inner_text("main")
    assert page.get_attribute("[data-recovery-remaining]", "data-recovery-remaining") == "9"


def test_required_user_is_led_through_enrolment(gateway: Gateway, page: Any,
                                                 shots: Path) -> None:
    """Policy: a user in a required group enrols right after the password, gets recovery
    codes, and only then reaches the application."""
    oathtool_available()
    gw = gateway
    user = new_user(gw, "sora", groups=["staff", "secure"])
    before = len(gw.stack.upstream.requests)
    sign_in(page, gw, user, next_url="/app")
    page.wait_for_url("**/mfa/setup?next=/app")
    page.screenshot(path=shots / "setup-required.png")
    page.goto(gw.url("/app"))  # the pending state has no upstream access (LF-06)
    assert "/login" in page.url and len(gw.stack.upstream.requests) == before
    page.go_back()
    page.goto(gw.url(f"{P}/mfa/setup?next=/app"))
    page.click("a[data-choice=totp]")
    totp_via_page(page, gw)
    page.wait_for_url(gw.url("/app"))
    assert gw.stack.upstream.header(-1, "remote-user") == [user]


def test_pending_state_cannot_reach_the_upstream(gateway: Gateway, page: Any) -> None:
    """LF-06: between the password and the second factor nothing is proxied."""
    oathtool_available()
    gw = gateway
    user = new_user(gw, "pend")
    sign_in(page, gw, user)
    page.goto(gw.url(f"{P}/mfa/totp/setup?next={P}/"))
    totp_via_page(page, gw)
    sign_out(page)
    before = len(gw.stack.upstream.requests)
    sign_in(page, gw, user, next_url="/wiki")
    page.wait_for_url("**/mfa?next=/wiki")
    page.goto(gw.url("/wiki"))
    assert f"{P}/login" in page.url
    assert len(gw.stack.upstream.requests) == before


def test_japanese_pages(gateway: Gateway, page_ja: Any, shots: Path) -> None:
    """The portal in Japanese (fonts-noto-cjk renders it in the screenshots)."""
    gw = gateway
    page = page_ja
    authenticator(page)
    without_autofill(page)
    user = new_user(gw, "yuki")
    page.goto(gw.url(f"{P}/login"))
    assert page.inner_text("button.passkey") == "パスキーでログイン"
    page.screenshot(path=shots / "login-ja.png")
    sign_in(page, gw, user)
    passkey_via_security_page(page, gw, "業務用ノート PC")
    page.wait_for_url("**/security")
    assert "ログイン中の端末" in page.inner_text("main")
    page.screenshot(path=shots / "security-ja.png", full_page=True)
