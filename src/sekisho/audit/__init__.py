"""Audit: events in the OWASP vocabulary, their hash chain in SQL, and JSON log lines.

The rest of Sekisho builds an :class:`AuditEvent` and calls ``await auditor.record(event)``;
:mod:`sekisho.audit.log` says which events are chained in SQL and which go to the log only.
"""

from sekisho.audit.chain import GENESIS, Link, Verifier, VerifyResult, canonical_json, verify
from sekisho.audit.events import (
    ADMIN_EVENT,
    EVENTS,
    AuditError,
    AuditEvent,
    SecretFieldRefused,
    lockout_opened,
    lockout_unlocked,
)
from sekisho.audit.log import AUDIT_LOGGER, LOG_ONLY, AuditLineWriter, Auditor, audit_log, json_line

__all__ = [
    "ADMIN_EVENT",
    "AUDIT_LOGGER",
    "EVENTS",
    "GENESIS",
    "LOG_ONLY",
    "AuditError",
    "AuditEvent",
    "AuditLineWriter",
    "Auditor",
    "Link",
    "SecretFieldRefused",
    "Verifier",
    "VerifyResult",
    "audit_log",
    "canonical_json",
    "json_line",
    "lockout_opened",
    "lockout_unlocked",
    "verify",
]
