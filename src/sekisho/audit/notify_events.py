"""Which audit events a user is told about (AU-06), and what the notice may say.

=====================================  ==============================  =====================
audit event                            notice kind                     recorded by
=====================================  ==============================  =====================
``authn_factor_bound:totp|passkey``    ``authenticator_bound``         auth.mfa.service
``authn_factor_removed:totp|passkey``  ``authenticator_removed``       auth.mfa.service
``authn_password_change``              ``password_changed``            portal password page
``authn_password_reset``               ``password_reset``              (a reset flow)
``authn_recovery_codes_regenerated``   ``recovery_codes_regenerated``  auth.mfa.service
``authn_recovery_code_used``           ``recovery_code_used``          auth.mfa.service
``authz_change:selfunlock``            ``self_unlock``                 portal self_unlock
``authz_admin`` ``lockout.unlock``     ``admin_unlock``                audit.admin_actions
``authn_token_reuse:totp``             ``totp_code_reused`` (TO-06)    auth.mfa.service
=====================================  ==============================  =====================

Account recovery (``/recover``, or a recovery code at the second-factor step) files
``authn_recovery_code_used`` and, when there was a lock to lift, ``authz_change:selfunlock``;
the notifier folds the two into one message. The user is the event's ``account`` when that
is a user id; an admin unlock of a name that is no account (an HMAC key) notifies nobody.
Only whitelisted facts pass from the event's details to the notice (see notify_messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sekisho.audit.events import ADMIN_EVENT, AuditEvent
from sekisho.audit.notify_messages import Facts, Notice, device_of
from sekisho.store.audit_log import StoredAuditEvent

__all__ = ["notice_for", "user_id_of"]

_MAX_ID = 2**63 - 1


def user_id_of(account: str | None) -> int | None:
    """The user id an event's ``account`` names, or None (an HMAC key, nothing)."""
    if not account or not account.isascii() or not account.isdigit() or len(account) > 19:
        return None
    value = int(account)
    return value if 0 < value <= _MAX_ID else None


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _factor(event: AuditEvent, detail: str) -> str:
    return detail or event.factor or "other"


def _classify(event: AuditEvent) -> tuple[str, Facts] | None:
    details: Mapping[str, Any] = event.details or {}
    base, _, detail = event.event.partition(":")
    match base:
        case "authn_factor_bound":
            return "authenticator_bound", {"factor": _factor(event, detail),
                                           "replaced": details.get("replaced") is True}
        case "authn_factor_removed":
            return "authenticator_removed", {"factor": _factor(event, detail)}
        case "authn_password_change":
            return "password_changed", {
                "sessions_ended": _count(details.get("other_sessions_ended")),
                "sessions_kept": details.get("end_other_sessions") is False}
        case "authn_password_reset":
            return "password_reset", {}
        case "authn_recovery_codes_regenerated":
            return "recovery_codes_regenerated", {"count": _count(details.get("count"))}
        case "authn_recovery_code_used":
            return "recovery_code_used", {"remaining": _count(details.get("remaining"))}
        case "authn_token_reuse" if _factor(event, detail) == "totp":
            return "totp_code_reused", {"factor": "totp"}
        case "authz_change" if detail == "selfunlock":
            return "self_unlock", {"via": event.factor or "other"}
        case _ if base == ADMIN_EVENT and event.action == "lockout.unlock" and not (
                event.actor or "").startswith("self:"):
            return "admin_unlock", {"factor": event.factor or "other"}
    return None


def notice_for(event: AuditEvent, stored: StoredAuditEvent | None = None) -> Notice | None:
    """The notice ``event`` calls for, or None. Cheap for every other event: it runs on the
    request's path for each audit event."""
    found = _classify(event)
    if found is None:
        return None
    user_id = user_id_of(event.account)
    if user_id is None:
        return None
    kind, facts = found
    return Notice(kind=kind, user_id=user_id, when=event.timestamp, client_ip=event.client_ip,
                  device=device_of(event.user_agent), facts=facts,
                  reference=None if stored is None else f"audit #{stored.seq}")
