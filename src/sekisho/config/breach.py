"""The ``[breach]`` section: where the offline breached-password corpus lives."""

from __future__ import annotations

from pydantic import Field

from sekisho.config.base import _Strict


class BreachSettings(_Strict):
    corpus_path: str = "./pwned-passwords.sekisho"
    reload_interval: float = Field(default=30.0, ge=1.0, le=3600.0)
