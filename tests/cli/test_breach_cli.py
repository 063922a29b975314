"""`sekisho breach import|stats|check` on a small real corpus, as an operator runs them."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

KNOWN = "P@ssw0rd"  # SHA-1 21BD12DC183F740EE76F27B78EB39C8AD972A757 (the HIBP blog example)
LISTED = "vermilion kettle sonata 1912"  # on no common list: only the corpus can list it


def sekisho(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(config), *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=120,
                          check=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sekisho.toml"
    path.write_text(f"[breach]\ncorpus_path = '{tmp_path / 'pwned.sekisho'}'\n")
    return path


def hibp_file(path: Path, passwords: list[str]) -> Path:
    lines = sorted(f"{hashlib.sha1(p.encode()).hexdigest().upper()}:{i + 10}\r\n"
                   for i, p in enumerate(passwords))
    with gzip.open(path, "wt", newline="") as fh:
        fh.writelines(lines)
    return path


def test_import_stats_check(config: Path, tmp_path: Path) -> None:
    """PW-11: an offline file gives a hit for a known hash and a miss for another password."""
    source = hibp_file(tmp_path / "pwned.txt.gz", [KNOWN, "hunter2", LISTED])
    imported = sekisho(config, "breach", "import", "--quiet", str(source))
    assert imported.returncode == 0, imported.stderr
    assert "imported 3 hashes" in imported.stdout
    stats = sekisho(config, "breach", "stats", "--verify")
    assert stats.returncode == 0, stats.stderr
    assert "hashes             3" in stats.stdout and "verified" in stats.stdout
    assert "resident tier" in stats.stdout and "disk tier          12 bytes" in stats.stdout
    found = sekisho(config, "breach", "check", "--password-stdin", stdin=LISTED + "\n")
    assert found.returncode == 1
    assert found.stdout.startswith("breached: seen at least 12 times by the offline corpus")
    fresh = "tangerine orbit quietly 77"
    missing = sekisho(config, "breach", "check", "--password-stdin", stdin=fresh + "\n")
    assert missing.returncode == 0
    assert missing.stdout.startswith("clean:")
    assert LISTED not in found.stdout + found.stderr
    assert fresh not in missing.stdout + missing.stderr


def test_bad_input_keeps_the_old_corpus(config: Path, tmp_path: Path) -> None:
    """Invariant 7: a malformed line fails the import, names file:line, changes nothing."""
    good = hibp_file(tmp_path / "good.txt.gz", [KNOWN, LISTED])
    assert sekisho(config, "breach", "import", "--quiet", str(good)).returncode == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("21BD12DC183F740EE76F27B78EB39C8AD972A757:5\r\nNOT-A-HASH:3\r\n")
    failed = sekisho(config, "breach", "import", "--quiet", str(bad))
    assert failed.returncode == 1
    assert "bad.txt:2" in failed.stderr
    assert "NOT-A-HASH" not in failed.stderr
    assert sekisho(config, "breach", "check", "--password-stdin",
                   stdin=LISTED + "\n").returncode == 1


def test_truncated_corpus_refused(config: Path, tmp_path: Path) -> None:
    """Invariant 7: a truncated corpus file is refused with a clear error."""
    source = hibp_file(tmp_path / "p.txt.gz", [KNOWN, "hunter2"])
    assert sekisho(config, "breach", "import", "--quiet", str(source)).returncode == 0
    corpus = tmp_path / "pwned.sekisho"
    corpus.write_bytes(corpus.read_bytes()[:-100])
    stats = sekisho(config, "breach", "stats")
    assert stats.returncode == 1
    assert "truncated" in stats.stderr.lower() or "size" in stats.stderr.lower()
