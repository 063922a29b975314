"""The passkey endpoints over HTTP on a real uvicorn, with the backend's software
authenticator (real keys, real signatures, real py_webauthn on the server): registration,
passwordless sign-in, passkey as the second factor, and their error paths."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.mfa_portal import (
    BACKENDS,
    HTML,
    Clock,
    P,
    api,
    authenticator,
    client,
    field,
    login_token,
    mfa_stack,
    password_step,
    passwordless,
    register_passkey,
    session_cookie,
)
from tests.integration.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Stack]:
    budgets = {"account": {"passkey_options": {"short": "6/minute", "long": "100/hour"}}}
    with mfa_stack(request, tmp_path, clock, ratelimit=budgets) as running:
        yield running


def test_register_then_sign_in_without_password(stack: Stack) -> None:
    """WA-03, WA-05: register in a fresh session; then a usernameless, user-verified login."""
    auth = authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        done = register_passkey(c, auth, name="Work laptop")
        assert done.status_code == 200, done.text
        assert done.json()["redirect"] == f"{P}/mfa/codes?next=/_sekisho/security"
        assert session_cookie(done)  # renewed with the new factor (SE-03)
        page = c.get(f"{P}/security", headers=HTML)
        assert "Work laptop" in page.text
    with client(stack) as c:
        signed_in = passwordless(c, auth, next_url="/wiki")
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json() == {"redirect": "/wiki"}
        assert session_cookie(signed_in)
        assert c.get("/wiki").status_code == 200
        assert stack.upstream.header(0, "remote-user") == ["alice"]


def test_passkey_as_second_factor(stack: Stack) -> None:
    """LF-06 with a passkey: password, then the assertion of one of the user's passkeys."""
    auth = authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        assert register_passkey(c, auth).status_code == 200
    with client(stack) as c:
        first = password_step(c, "alice", next_url="/app")
        assert first.headers["location"] == f"{P}/mfa?next=/app"
        page = c.get(first.headers["location"], headers=HTML)
        assert 'data-passkey="mfa"' in page.text and 'action="/_sekisho/mfa/totp"' not in page.text
        token = field(page.text, "csrf_token")
        options = api(c, "/webauthn/mfa/options", token)
        assert options.status_code == 200
        assert json.loads(options.text)["allowCredentials"]  # the user's own passkeys
        done = api(c, "/webauthn/mfa/verify", token,
                   {"credential": auth.assertion(options.text), "next": "/app"})
        assert done.status_code == 200 and done.json() == {"redirect": "/app"}
        assert c.get("/app").status_code == 200


def test_another_users_passkey_is_refused_as_second_factor(stack: Stack) -> None:
    """WA-04: Bob's valid assertion inside Alice's ceremony is rejected."""
    stack.add_user("bob", "another long pass phrase 42", groups=["staff"])
    alice, bob = authenticator(stack), authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        register_passkey(c, alice)
    with client(stack) as c:
        password_step(c, "bob", "another long pass phrase 42")
        register_passkey(c, bob)
    with client(stack) as c:
        password_step(c, "alice")
        token = field(c.get(f"{P}/mfa", headers=HTML).text, "csrf_token")
        options = api(c, "/webauthn/mfa/options", token)
        forged = dict(json.loads(options.text), allowCredentials=[])
        refused = api(c, "/webauthn/mfa/verify", token,
                      {"credential": bob.assertion(json.dumps(forged))})
        assert refused.status_code == 401
        assert refused.json()["error"] == "passkey_failed"
        assert c.get("/app", headers=HTML).status_code == 302


def test_failed_assertions_get_one_answer(stack: Stack) -> None:
    """WA-09, LF-03: an unknown passkey and a corrupted signature get the same response."""
    auth, stranger = authenticator(stack), authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        register_passkey(c, auth)
    stranger_reg = stranger.register(json.dumps({
        "rp": {"id": "localhost", "name": "x"}, "user": {"id": "AAAA", "name": "x",
                                                          "displayName": "x"},
        "challenge": "AAAA", "pubKeyCredParams": [{"type": "public-key", "alg": -7}]}))
    assert stranger_reg
    answers = []
    for who, knobs in ((stranger, {}), (auth, {"corrupt_signature": True})):
        with client(stack) as c:
            failed = passwordless(c, who, **knobs)
            answers.append((failed.status_code, failed.json(), session_cookie(failed)))
    assert answers[0] == answers[1]
    assert answers[0][0] == 401 and answers[0][2] is None


def test_user_verification_is_required_without_password(stack: Stack) -> None:
    """WA-03: a UV=0 assertion does not sign anyone in on the passwordless route."""
    auth = authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        register_passkey(c, auth)
    with client(stack) as c:
        refused = passwordless(c, auth, user_verified=False)
        assert refused.status_code == 401 and session_cookie(refused) is None


def test_challenge_is_single_use_and_bound_to_the_browser(stack: Stack) -> None:
    """WA-01: an assertion cannot be replayed, nor used with another browser's cookie."""
    auth = authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        register_passkey(c, auth)
    with client(stack) as c, client(stack) as other:
        token = login_token(c)
        options = api(c, "/webauthn/login/options", token)
        credential = auth.assertion(options.text)
        other_token = login_token(other)
        stolen = api(other, "/webauthn/login/verify", other_token, {"credential": credential})
        assert stolen.status_code == 401
        first = api(c, "/webauthn/login/verify", token, {"credential": credential})
        assert first.status_code == 200
        token = login_token(c)
        replay = api(c, "/webauthn/login/verify", token, {"credential": credential})
        assert replay.status_code == 401


def test_csrf_and_origin_checks(stack: Stack) -> None:
    """CR-01, CR-02: no token, a wrong token, a cross-site request, a form post."""
    with client(stack) as c:
        token = login_token(c)
        assert api(c, "/webauthn/login/options", None).status_code == 403
        assert api(c, "/webauthn/login/options", "A" * 43).status_code == 403
        cross = c.post(f"{P}/webauthn/login/options", content="{}", headers={
            "content-type": "application/json", "x-csrf-token": token,
            "sec-fetch-site": "cross-site"})
        assert cross.status_code == 403
        form = c.post(f"{P}/webauthn/login/options", data={"a": "b"},
                      headers={"x-csrf-token": token})
        assert form.status_code == 400
        big = c.post(f"{P}/webauthn/login/verify", content=b"{" + b" " * 70000 + b"}",
                     headers={"content-type": "application/json", "x-csrf-token": token})
        assert big.status_code == 413


def test_option_issuance_is_throttled(stack: Stack) -> None:
    """RL-09: challenge issuance has its own budget (here 6 a minute)."""
    with client(stack) as c:
        token = login_token(c)
        statuses = [api(c, "/webauthn/login/options", token).status_code for _ in range(7)]
        assert statuses == [200] * 6 + [429]
        refused = api(c, "/webauthn/login/options", token)
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"] == "throttled_passkey"


def test_registration_needs_a_fresh_session(stack: Stack, clock: Clock) -> None:
    """WA-05, SE-08: a stale session gets step_up with a re-authentication URL."""
    with client(stack) as c:
        password_step(c, "alice")
        page = c.get(f"{P}/mfa/passkey/setup", headers=HTML)
        token = page.text.split('data-csrf="')[1].split('"')[0]
        clock.advance(16 * 60)
        refused = api(c, "/webauthn/register/options", token)
        assert refused.status_code == 403
        assert refused.json()["error"] == "step_up"
        assert refused.json()["redirect"].startswith(f"{P}/login?prompt=login")


def test_duplicate_registration_is_refused(stack: Stack) -> None:
    """WA-05: a credential ID registered already gets 409."""
    auth = authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        first = register_passkey(c, auth)
        assert first.status_code == 200
        page = c.get(f"{P}/mfa/passkey/setup", headers=HTML)
        token = page.text.split('data-csrf="')[1].split('"')[0]
        options = json.loads(api(c, "/webauthn/register/options", token).text)
        existing = next(iter(auth.credentials))
        options["excludeCredentials"] = []
        again = api(c, "/webauthn/register/verify", token, {
            "credential": auth.register(json.dumps(options), credential_id=existing)})
        assert again.status_code == 409 and again.json()["error"] == "duplicate_credential"


def test_required_user_enrols_a_passkey_in_the_pending_state(stack: Stack) -> None:
    """Policy, LF-06: the registration completes the login, then the recovery codes."""
    auth = authenticator(stack)
    with client(stack) as c:
        first = password_step(c, "sam", next_url="/wiki")
        pending = session_cookie(first)
        assert c.get("/wiki", headers=HTML).status_code == 302
        done = register_passkey(c, auth, next_url="/wiki")
        assert done.status_code == 200
        assert done.json() == {"redirect": f"{P}/mfa/codes?next=/wiki"}
        assert session_cookie(done) not in (None, pending)
        assert c.get("/wiki").status_code == 200


def test_enrolment_cannot_skip_an_existing_second_factor(stack: Stack) -> None:
    """LF-06: a pending session of a user who has a factor cannot register another one (or
    bind a TOTP secret) to get in without it."""
    auth = authenticator(stack)
    with client(stack) as c:
        password_step(c, "alice")
        assert register_passkey(c, auth).status_code == 200
    with client(stack) as c:
        password_step(c, "alice")
        page = c.get(f"{P}/mfa", headers=HTML)
        token = field(page.text, "csrf_token")
        refused = api(c, "/webauthn/register/options", token)
        assert refused.status_code == 401
        setup = c.get(f"{P}/mfa/totp/setup", headers=HTML)
        assert setup.status_code == 303 and setup.headers["location"].startswith(f"{P}/mfa?")
        bind = c.post(f"{P}/mfa/totp/setup", data={"csrf_token": token, "secret": "A" * 32,
                                                   "tag": "x", "code": "123456"})
        assert bind.status_code == 303 and bind.headers["location"].startswith(f"{P}/mfa?")
        assert c.get("/wiki", headers=HTML).status_code == 302


def test_rename_and_delete_and_the_last_passkey(stack: Stack) -> None:
    """WA-08: rename; delete; a required user's only passkey cannot be deleted (409)."""
    with client(stack) as c:
        password_step(c, "sam")
        assert register_passkey(c, authenticator(stack)).status_code == 200
        page = c.get(f"{P}/security", headers=HTML)
        passkey_id = re.search(r'data-passkey-id="(\d+)"', page.text)
        assert passkey_id
        data = {"csrf_token": field(page.text, "csrf_token"), "passkey_id": passkey_id.group(1)}
        refused = c.post(f"{P}/security/passkeys/delete", data=data)
        assert refused.status_code == 409 and "only second factor" in refused.text
        renamed = c.post(f"{P}/security/passkeys/rename", data={**data, "name": "YubiKey 5"})
        assert renamed.status_code == 303
        assert "YubiKey 5" in c.get(f"{P}/security", headers=HTML).text
        empty = c.post(f"{P}/security/passkeys/rename", data={**data, "name": "  "})
        assert empty.status_code == 400
        other = c.post(f"{P}/security/passkeys/delete", data={**data, "passkey_id": "999"})
        assert other.status_code == 404
    with client(stack) as c:
        password_step(c, "alice")
        assert register_passkey(c, authenticator(stack)).status_code == 200
        page = c.get(f"{P}/security", headers=HTML)
        passkey_id = re.search(r'data-passkey-id="(\d+)"', page.text)
        assert passkey_id
        gone = c.post(f"{P}/security/passkeys/delete", data={
            "csrf_token": field(page.text, "csrf_token"), "passkey_id": passkey_id.group(1)})
        assert gone.status_code == 303
        assert "You have no passkeys yet" in c.get(f"{P}/security", headers=HTML).text
