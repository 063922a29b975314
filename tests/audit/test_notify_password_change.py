"""The ``password_changed`` notice says whether the other sessions were signed out (PW-14,
AU-06): a user who kept them signed in is told so, in English and Japanese."""

from __future__ import annotations

from typing import Any

import pytest

from sekisho.audit.events import AuditEvent
from sekisho.audit.notify_events import notice_for
from sekisho.audit.notify_messages import render


def _mail(details: dict[str, Any]) -> str:
    notice = notice_for(AuditEvent(event="authn_password_change", account="7",
                                   factor="password", details=details))
    assert notice is not None and notice.kind == "password_changed"
    message = render([notice], username="alice", to=["alice@example.com"],
                     sender="sekisho@example.com", contact="IT helpdesk",
                     portal_url="https://gw.example.com/_sekisho")
    return str(message.get_content())


@pytest.mark.parametrize(("details", "english", "japanese"), [
    ({"end_other_sessions": True, "other_sessions_ended": 2},
     "2 other session(s) were signed out.", "他の 2 件のセッションはサインアウトされました。"),
    ({"end_other_sessions": False, "other_sessions_ended": 0},
     "Your other sessions were not signed out.", "他のセッションはサインアウトされていません。"),
])
def test_notice_says_what_became_of_the_other_sessions(
    details: dict[str, Any], english: str, japanese: str
) -> None:
    """PW-14: the out-of-band notice records whether the other sessions were ended."""
    body = _mail({"was_restricted": False, "forced": False, **details})
    assert english in body and japanese in body


def test_events_without_the_choice_read_as_before() -> None:
    """An event from before the offer (no ``end_other_sessions``) says nothing was kept."""
    body = _mail({"was_restricted": False, "other_sessions_ended": 1})
    assert "1 other session(s) were signed out." in body
    assert "were not signed out" not in body
