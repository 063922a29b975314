"""Lockout exports as files: CSV and JSON of :meth:`LockoutRecord.export` rows (AD-01).

One writer for the CLI and the admin pages. CSV cells are defused against spreadsheet
formulas: a cell that would start with ``=``, ``+``, ``-``, ``@``, a tab or a CR gets a
leading ``'`` (OWASP "CSV injection"). The three lists (top addresses, subnets, user agents)
are JSON text in one cell each; a JSON cell starts with ``[`` and needs no defusing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from sekisho.store.lockout_records import EXPORT_FIELDS

__all__ = ["FORMULA_START", "csv_cell", "export_text", "write_export"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One CSV cell, safe to open in a spreadsheet."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def write_export(rows: Iterable[Mapping[str, Any]], fmt: str, out: TextIO) -> None:
    """Write ``rows`` (export dicts) as ``csv`` (header first) or ``json`` (an array)."""
    if fmt == "json":
        json.dump(list(rows), out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    if fmt != "csv":
        raise ValueError("format must be csv or json")
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        writer.writerow([csv_cell(row[name]) for name in EXPORT_FIELDS])


def export_text(rows: Iterable[Mapping[str, Any]], fmt: str) -> str:
    buffer = io.StringIO(newline="")
    write_export(rows, fmt, buffer)
    return buffer.getvalue()
