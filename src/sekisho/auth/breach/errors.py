"""Errors of the offline breached-password corpus.

``BreachError`` is the one base class here; re-parenting it onto ``sekisho.errors.SekishoError``
is a one-line change.

::

    BreachError
    ├── CorpusError                 this corpus file cannot be used
    │   ├── CorpusFormatError       not a corpus, version 1 or unknown, inconsistent header
    │   ├── CorpusTruncatedError    the file size differs from the one the header records
    │   └── CorpusChecksumError     a section digest does not match; a lookup out of range
    └── CorpusImportError           an import failed (also: a sub-bucket over 255 records);
        │                           the previous corpus is left in place
        └── InvalidInputLine        a malformed input line (names the file and line number)

Messages never quote input lines: a wrongly chosen input file could hold plain-text passwords.
"""

from __future__ import annotations

import os
from pathlib import Path

from sekisho.errors import SekishoError


class BreachError(SekishoError):
    """Root of the breached-password corpus errors."""


class CorpusError(BreachError):
    """A corpus file cannot be used."""


class CorpusFormatError(CorpusError):
    """Not a Sekisho corpus, version 1 (re-import) or unknown, or an inconsistent header."""


class CorpusTruncatedError(CorpusError):
    """The file is shorter (or longer) than its header says: an interrupted copy or write."""


class CorpusChecksumError(CorpusError):
    """A section's BLAKE2b digest does not match the header, or a lookup read out of range:
    the file is corrupted."""


class CorpusImportError(BreachError):
    """Building a corpus failed; nothing was replaced."""


class InvalidInputLine(CorpusImportError):
    """A line of the HIBP input is malformed."""

    def __init__(self, path: str | os.PathLike[str], line_number: int, reason: str) -> None:
        self.path = Path(path)
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"{self.path}:{line_number}: {reason}")
