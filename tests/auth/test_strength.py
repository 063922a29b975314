"""Strength feedback for the change-password page (zxcvbn score, warning, suggestions)."""

from __future__ import annotations

import ast
import inspect
from concurrent.futures import ThreadPoolExecutor

import pytest

from sekisho.auth.strength import _CODES, MAX_EVALUATED, estimate
from sekisho.gateway.i18n import LANGUAGES, catalog


def test_weak_and_strong() -> None:
    weak = estimate("password")
    assert weak.score == 0
    assert weak.warning == "top10"
    strong = estimate("vermilion otter juggles seventeen kettles")
    assert strong.score == 4 and strong.codes == ()


def test_user_words_lower_the_score() -> None:
    """A password made of the user's own words scores low when they are given."""
    password = "liddellwonderland"
    alone = estimate(password)
    with_context = estimate(password, user_inputs=["alice", "liddell", "wonderland"])
    assert with_context.score < alone.score


def test_long_input_is_scored_on_its_prefix() -> None:
    long = "correct horse battery staple " * 10
    result = estimate(long)
    assert result.truncated and result.score == 4
    assert not estimate(long[:MAX_EVALUATED]).truncated


def test_empty_password() -> None:
    assert estimate("").score == 0


def test_every_zxcvbn_message_has_a_code_and_every_code_a_translation() -> None:
    """zxcvbn's English sentences become codes the portal translates (en, ja)."""
    from zxcvbn import feedback

    tree = ast.parse(inspect.getsource(feedback))
    messages = {
        node.args[0].value for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        and node.func.id == "_" and isinstance(node.args[0], ast.Constant)
    }
    assert messages and messages == set(_CODES)
    for lang in LANGUAGES:
        texts = catalog(lang)
        missing = [c for c in _CODES.values() if f"password.zx.{c}" not in texts]
        assert missing == [], (lang, missing)
        assert all(f"password.score.{n}" in texts for n in range(5))


@pytest.mark.parametrize("workers", [8])
def test_concurrent_calls_do_not_mix_users_words(workers: int) -> None:
    """zxcvbn keeps user inputs in a module-level dict; the lock keeps each call's own."""
    cases = [(f"{name}{name}2024", [name]) for name in
             ("zebedee", "quillon", "marrowby", "tuppence", "ossian", "wendeline")] * 8
    expected = [estimate(p, user_inputs=w) for p, w in cases]
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(10):  # without the lock, about one run in four mixes them up
            got = list(pool.map(lambda c: estimate(c[0], user_inputs=c[1]), cases))
            assert got == expected
