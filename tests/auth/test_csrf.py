"""CSRF tokens (CR-01)."""

from __future__ import annotations

from sekisho.auth.csrf import CsrfTokens


def test_token_bound_to_binding_and_key() -> None:
    """CR-01: a token verifies only for its own session and key."""
    tokens = CsrfTokens(b"k" * 32)
    token = tokens.issue("session-a")
    assert tokens.verify(token, binding="session-a")
    assert not tokens.verify(token, binding="session-b")
    assert not CsrfTokens(b"x" * 32).verify(token, binding="session-a")
    assert not tokens.verify(None, binding="session-a")
    assert not tokens.verify("", binding="session-a")
    assert not tokens.verify(token, binding="")
    assert not tokens.verify(token[:-1] + ("A" if token[-1] != "A" else "B"), binding="session-a")
    assert not tokens.verify("é" * 10, binding="session-a")
