"""Who the gateway vouches for on a proxied request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Identity:
    """The signed-in user, as sent upstream in the identity headers (PX-01)."""

    username: str
    groups: tuple[str, ...]
    email: str
    display_name: str
