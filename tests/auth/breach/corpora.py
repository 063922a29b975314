"""Small real corpora of chosen passwords, built with the real importer."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sekisho.auth.breach import import_corpus


def build_corpus(target: Path, passwords: dict[str, int]) -> Path:
    """Import ``{password: count}`` (as HIBP ``SHA1:COUNT`` lines) into ``target``."""
    source = target.with_name(target.name + ".txt")
    source.write_text("".join(
        sorted(f"{hashlib.sha1(p.encode()).hexdigest().upper()}:{c}\r\n"
               for p, c in passwords.items())))
    import_corpus([source], target)
    source.unlink()
    return target
