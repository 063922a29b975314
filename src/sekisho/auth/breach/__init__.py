"""Offline breached-password corpus: HIBP Pwned Passwords SHA-1 hashes in an mmap-able file.

Build one with :func:`import_corpus`, look passwords up with :class:`BreachCorpus`, or with
:class:`CorpusHolder` in a long-running gateway that should pick up a re-imported file.
The format, its false-positive rate and its measured figures: ``docs/breach-corpus.md``.
"""

from sekisho.auth.breach.corpus import BreachCorpus
from sekisho.auth.breach.errors import (
    BreachError,
    CorpusChecksumError,
    CorpusError,
    CorpusFormatError,
    CorpusImportError,
    CorpusTruncatedError,
    InvalidInputLine,
)
from sekisho.auth.breach.format import (
    DEFAULT_BUCKET_BITS,
    DEFAULT_REST_BITS,
    CorpusInfo,
    decode_count,
    encode_count,
    false_positive_rate,
)
from sekisho.auth.breach.holder import CorpusHolder
from sekisho.auth.breach.importer import ImportResult, ProgressCallback, import_corpus

__all__ = [
    "DEFAULT_BUCKET_BITS",
    "DEFAULT_REST_BITS",
    "BreachCorpus",
    "BreachError",
    "CorpusChecksumError",
    "CorpusError",
    "CorpusFormatError",
    "CorpusHolder",
    "CorpusImportError",
    "CorpusInfo",
    "CorpusTruncatedError",
    "ImportResult",
    "InvalidInputLine",
    "ProgressCallback",
    "decode_count",
    "encode_count",
    "false_positive_rate",
    "import_corpus",
]
