"""Step-up: sensitive changes need a recent authentication (SE-08).

A session is *fresh* when it was authenticated within ``mfa.step_up_max_age`` seconds and,
for a user who has a second factor, with two factors (the account's current maximum level:
SE-08 "both factors for MFA changes", TO-03, WA-05). Otherwise the user re-authenticates
through the login page (``prompt=login``), which for such a user asks the second factor too;
the new session's ``auth_at`` is then fresh.

``amr`` values follow RFC 8176: ``pwd`` password, ``otp`` one-time code, ``hwk`` possession
of a key held by an authenticator (passkeys), ``mfa`` multiple factors in one ceremony
(a passkey verified with user verification). A recovery code (``recovery``, not an RFC 8176
value) is a possession factor that NIST allows together with the password for recovery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from urllib.parse import quote

from sekisho.auth.sessions import Session

#: What the password (a knowledge factor) is, and what proves possession of something.
_KNOWLEDGE = frozenset({"pwd"})
_POSSESSION = frozenset({"otp", "hwk", "swk", "recovery"})


def is_multi_factor(amr: Iterable[str]) -> bool:
    """Did this authentication use two factors (or one multi-factor authenticator)?"""
    methods = set(amr)
    return "mfa" in methods or bool(methods & _KNOWLEDGE and methods & _POSSESSION)


class StepUp:
    def __init__(
        self, *, prefix: str, max_age: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._prefix = prefix
        self._max_age = max_age
        self._clock = clock

    def fresh(self, session: Session, *, has_second_factor: bool) -> bool:
        """May this session change factors, the password, recovery codes or sessions now?"""
        if self._clock() - session.auth_at > self._max_age:
            return False
        return not has_second_factor or is_multi_factor(session.amr)

    def age(self, session: Session) -> float:
        return self._clock() - session.auth_at

    def login_url(self, next_path: str) -> str:
        """Where to re-authenticate, coming back to ``next_path`` (a portal path)."""
        return f"{self._prefix}/login?prompt=login&next={quote(next_path, safe='/')}"
