"""The MFA portal's small pure parts: step-up freshness (SE-08) on a controllable clock, the
amr rule, how keys and devices are shown, session references, JSON redirects."""

from __future__ import annotations

import pytest
from starlette.responses import RedirectResponse

from sekisho.auth.sessions import Session
from sekisho.gateway.i18n import LANGUAGES, catalog
from sekisho.gateway.portal.mfa_enrol import group_key
from sekisho.gateway.portal.passkey_api import as_json
from sekisho.gateway.portal.security_page import device_label, session_ref
from sekisho.gateway.portal.step_up import StepUp, is_multi_factor

NOW = 1_700_000_000.0


def session(*, auth_age: float, amr: tuple[str, ...], key: str = "k" * 64) -> Session:
    return Session(key=key, user_id=1, username="alice", groups=("staff",), email="",
                   display_name="", created_at=NOW - auth_age, auth_at=NOW - auth_age,
                   expires_at=NOW + 3600, last_seen=NOW, amr=amr)


@pytest.mark.parametrize(("amr", "multi"), [
    (("pwd",), False), (("pwd", "otp"), True), (("pwd", "hwk"), True),
    (("hwk", "mfa"), True), (("pwd", "recovery"), True), (("otp",), False), ((), False),
])
def test_is_multi_factor(amr: tuple[str, ...], multi: bool) -> None:
    assert is_multi_factor(amr) is multi


def test_step_up_window_is_fifteen_minutes() -> None:
    """SE-08: 15 min is fresh, 15 min + 1 s is not; a user with a second factor needs a
    two-factor authentication, one without does not."""
    step_up = StepUp(prefix="/_sekisho", max_age=900, clock=lambda: NOW)
    assert step_up.fresh(session(auth_age=900, amr=("pwd", "otp")), has_second_factor=True)
    assert not step_up.fresh(session(auth_age=901, amr=("pwd", "otp")), has_second_factor=True)
    assert not step_up.fresh(session(auth_age=10, amr=("pwd",)), has_second_factor=True)
    assert step_up.fresh(session(auth_age=10, amr=("pwd",)), has_second_factor=False)
    assert not step_up.fresh(session(auth_age=901, amr=("pwd",)), has_second_factor=False)


def test_step_up_url_comes_back_to_the_page() -> None:
    step_up = StepUp(prefix="/_sekisho", max_age=900)
    assert (step_up.login_url("/_sekisho/mfa/codes?next=/x&y=1")
            == "/_sekisho/login?prompt=login&next=/_sekisho/mfa/codes%3Fnext%3D/x%26y%3D1")


def test_key_is_grouped_by_four() -> None:
    assert group_key("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP") == (
        "JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP")


@pytest.mark.parametrize(("agent", "label"), [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0 Safari/537.36 Edg/126.0", "Edge / Windows"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
     "Firefox / Linux"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari / iOS"),
    ("curl/8.5", ""),
])
def test_device_label(agent: str, label: str) -> None:
    assert device_label(agent) == label


def test_session_reference_hides_the_key() -> None:
    a, b = session(auth_age=0, amr=(), key="a" * 64), session(auth_age=0, amr=(), key="b" * 64)
    assert session_ref(a) == session_ref(a) != session_ref(b)
    assert session_ref(a) not in a.key and len(session_ref(a)) == 24


def test_json_redirect_keeps_the_cookies() -> None:
    redirect = RedirectResponse("/wiki", status_code=303)
    redirect.headers.append("set-cookie", "a=1; Path=/")
    redirect.headers.append("set-cookie", "b=2; Path=/")
    out = as_json(redirect)
    assert out.status_code == 200 and out.body == b'{"redirect":"/wiki"}'
    assert out.headers.getlist("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]


def test_mfa_strings_exist_in_both_languages() -> None:
    keys = {lang: {k for k in catalog(lang) if k.startswith("mfa.")} for lang in LANGUAGES}
    assert keys["en"] == keys["ja"] and len(keys["en"]) > 100
    for code in ("invalid_code", "replayed_code", "webauthn_rejected", "last_factor",
                 "duplicate_credential", "unknown_passkey", "invalid_name"):
        assert f"mfa.error.{code}" in keys["en"]  # every MfaError.code the portal can show
