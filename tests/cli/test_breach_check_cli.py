"""`sekisho breach check` runs the gateway's check: the common list, then the configured
breach sources (offline corpus, range API) with ``min_count``; one verdict line with its
reason; exit 0 clean, 1 listed, 2 no answer; the password is never printed (PW-08, PW-10,
PW-11).

The CLI runs as an operator runs it (a subprocess with its own config file); the range API
is the local fake of the online tests, the corpus a small real one built with the importer.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.auth.breach.corpora import build_corpus
from tests.auth.breach.fake_range import running_fake_range

LISTED = "tangerine orbit quietly 77"  # in the corpus (12 times), on no common list
RARE = "vermilion kettle sonata 1912"  # in the corpus twice
CLEAN = "purple-password-giraffe-lamp"  # contains a common word, is not one
COMMON = "QWERTYUIOP12345"


def sekisho(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    return subprocess.run([sys.executable, "-m", "sekisho", "-c", str(config), *args],
                          input=stdin, capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def check(config: Path, password: str) -> subprocess.CompletedProcess[str]:
    done = sekisho(config, "breach", "check", "--password-stdin", stdin=password + "\n")
    output = done.stdout + done.stderr
    assert password not in output
    assert hashlib.sha1(password.encode()).hexdigest().upper() not in output.upper()
    return done


def write_config(path: Path, **breach: object) -> Path:
    lines = ["[breach]"] + [f"{key} = {json.dumps(value)}" for key, value in breach.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return build_corpus(tmp_path / "pwned.sekisho", {LISTED: 12, RARE: 2})


@pytest.mark.parametrize(("password", "code", "start"), [
    (LISTED, 1, "breached: seen at least 12 times by the offline corpus"),
    (COMMON, 1, "common: on the common-password list"),
    (CLEAN, 0, "clean: not on the common-password list; not listed by the offline corpus"),
])
def test_offline_verdicts(tmp_path: Path, corpus: Path, password: str, code: int,
                          start: str) -> None:
    """PW-08, PW-11: each verdict with its reason and exit status; no password echoed."""
    config = write_config(tmp_path / "s.toml", mode="offline", corpus_path=str(corpus))
    done = check(config, password)
    assert done.returncode == code, done.stderr
    assert done.stdout.startswith(start), done.stdout


def test_min_count_is_applied(tmp_path: Path, corpus: Path) -> None:
    """breach.min_count as the gateway applies it: seen twice, min 5: clean, and says so."""
    config = write_config(tmp_path / "s.toml", mode="offline", corpus_path=str(corpus),
                          min_count=5)
    done = check(config, RARE)
    assert done.returncode == 0
    assert "seen 2 times, fewer than min_count 5" in done.stdout
    assert check(config, LISTED).returncode == 1


def test_online_range_api_with_k_anonymity(tmp_path: Path) -> None:
    """PW-10: the configured range API answers; only a 5-digit prefix left, padded."""
    with running_fake_range() as fake:
        fake.add(LISTED, 3_000)
        fake.pad(CLEAN)  # a padding line equal to the real suffix: not a hit
        config = write_config(tmp_path / "s.toml", mode="online", api_url=fake.base)
        listed = check(config, LISTED)
        assert listed.returncode == 1
        assert listed.stdout.startswith(f"breached: seen 3,000 times by the range API {fake.base}")
        clean = check(config, CLEAN)
        assert clean.returncode == 0 and clean.stdout.startswith("clean:")
        common = check(config, COMMON)
        assert common.returncode == 1 and common.stdout.startswith("common:")
    assert len(fake.requests) == 2  # the common password is settled before any request
    for path, headers in fake.requests:
        assert len(path.rsplit("/", 1)[1]) == 5 and headers["Add-Padding"] == "true"


def test_online_outage_is_no_answer(tmp_path: Path) -> None:
    """PW-11: a source that cannot answer is exit 2 with the reason, never 'clean'."""
    with running_fake_range() as fake:
        fake.status = 503
        fake.add(LISTED, 3_000)
        config = write_config(tmp_path / "s.toml", mode="online", api_url=fake.base)
        done = check(config, LISTED)
        assert done.returncode == 2
        assert done.stdout.startswith("unavailable: no breach source could answer")
        assert "HTTP 503" in done.stdout
        # The common list needs no source: still listed.
        assert check(config, COMMON).returncode == 1


def test_both_modes_corpus_answers_when_the_api_is_down(tmp_path: Path, corpus: Path) -> None:
    """mode = both: the corpus answering is enough (as at the gateway); the outage is said."""
    with running_fake_range() as fake:
        fake.status = 503
        config = write_config(tmp_path / "s.toml", mode="both", corpus_path=str(corpus),
                              api_url=fake.base)
        assert check(config, LISTED).returncode == 1  # the corpus decides, no request needed
        done = check(config, CLEAN)
        assert done.returncode == 0
        assert "unavailable (online: range API answered HTTP 503)" in done.stdout


def test_no_source_and_unusable_corpus(tmp_path: Path) -> None:
    """auto without a corpus: the common list only, said so; offline without one: exit 2."""
    missing = tmp_path / "missing.sekisho"
    auto = write_config(tmp_path / "auto.toml", mode="auto", corpus_path=str(missing))
    done = check(auto, CLEAN)
    assert done.returncode == 0
    assert f"no breach source to ask (breach.mode = auto, no corpus at {missing})" in done.stdout
    off = write_config(tmp_path / "off.toml", mode="off")
    assert check(off, COMMON).returncode == 1
    offline = write_config(tmp_path / "offline.toml", mode="offline", corpus_path=str(missing))
    failed = check(offline, CLEAN)
    assert failed.returncode == 2 and failed.stdout == ""
    assert str(missing) in failed.stderr
    assert sekisho(off, "breach", "check", "--password-stdin", stdin="\n").returncode == 2


def test_prompt_does_not_echo(tmp_path: Path, corpus: Path) -> None:
    """Without --password-stdin the password is read from the terminal with echo off."""
    config = write_config(tmp_path / "s.toml", mode="offline", corpus_path=str(corpus))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKISHO_")}
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session with this pty as its terminal
        os.execve(sys.executable, [sys.executable, "-m", "sekisho", "-c", str(config),
                                   "breach", "check"], env)
    output = _read_until(fd, b"Password to check: ")
    os.write(fd, LISTED.encode() + b"\n")
    output += _read_until(fd, None)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 1
    assert b"breached: seen at least 12 times" in output
    assert LISTED.encode() not in output


def _read_until(fd: int, marker: bytes | None, timeout: float = 60.0) -> bytes:
    """Read the pty until ``marker`` (or end of output when None)."""
    data, deadline = b"", time.monotonic() + timeout
    while marker is None or marker not in data:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"no {marker!r} from the CLI; got {data[-200:]!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            chunk = b""
        if not chunk:
            if marker is None:
                return data
            raise AssertionError(f"the CLI ended before {marker!r}; got {data[-200:]!r}")
        data += chunk
    return data
