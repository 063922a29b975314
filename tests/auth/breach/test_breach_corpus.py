"""BreachCorpus: lookups, the file checks on open, verify(), and the false-positive rate."""

from __future__ import annotations

import hashlib
import math
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from sekisho.auth.breach import (
    BreachCorpus,
    CorpusChecksumError,
    CorpusError,
    CorpusFormatError,
    CorpusTruncatedError,
    decode_count,
    encode_count,
    false_positive_rate,
    import_corpus,
)
from sekisho.auth.breach import corpus as corpus_module
from sekisho.auth.breach.format import HEADER_SIZE, Layout

P_AT_SSW0RD_SHA1 = "21BD12DC183F740EE76F27B78EB39C8AD972A757"  # REQUIREMENTS 15.2


def _build(tmp_path: Path, hibp: Any, entries: dict[bytes, int], **kw: int) -> Path:
    source = hibp.write_file(tmp_path / "pwned.txt", entries)
    target = tmp_path / "pwned.corpus"
    import_corpus([source], target, **kw)
    return target


@pytest.mark.parametrize(
    ("bucket_bits", "remainder_bytes"), [(8, 1), (12, 2), (16, 4), (20, 4), (24, 2)]
)
def test_round_trip_members_hit_with_counts_and_non_members_miss(
    tmp_path: Path, hibp: Any, bucket_bits: int, remainder_bytes: int
) -> None:
    entries = hibp.entries(5000)
    path = _build(tmp_path, hibp, entries, bucket_bits=bucket_bits, remainder_bytes=remainder_bytes)
    with BreachCorpus(path) as corpus:
        fingerprint_bits = bucket_bits + 8 * remainder_bytes
        assert corpus.info.layout.fingerprint_bits == fingerprint_bits
        if fingerprint_bits >= 32:  # no fingerprint collisions expected among 5000
            assert corpus.count == len(entries)
            assert all(corpus.lookup_sha1(d) == hibp.expected(c) for d, c in entries.items())
        else:  # colliding members share the larger count: never below their own
            assert all(corpus.lookup_sha1(d) >= hibp.expected(c) for d, c in entries.items())
        misses = hibp.non_members(5000, entries)
        hits = sum(corpus.lookup_sha1(d) is not None for d in misses)
        assert hits <= 5000 * corpus.info.false_positive_rate + 6 * math.sqrt(
            5000 * corpus.info.false_positive_rate + 1
        )


def test_portable_path_for_big_endian_hosts_gives_the_same_answers(
    tmp_path: Path, hibp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = hibp.entries(2000)
    path = _build(tmp_path, hibp, entries, bucket_bits=12, remainder_bytes=2)
    monkeypatch.setattr(corpus_module, "_NATIVE_LE", False)
    with BreachCorpus(path) as corpus:
        assert not isinstance(corpus._rems, memoryview)
        assert all(corpus.lookup_sha1(d) == hibp.expected(c) for d, c in entries.items())
        assert not any(corpus.lookup_sha1(d) for d in hibp.non_members(2000, entries))


def test_known_password_is_found(tmp_path: Path, hibp: Any) -> None:
    assert hashlib.sha1(b"P@ssw0rd").hexdigest().upper() == P_AT_SSW0RD_SHA1
    entries = hibp.entries(1000)
    entries[bytes.fromhex(P_AT_SSW0RD_SHA1)] = 52579
    with BreachCorpus(_build(tmp_path, hibp, entries)) as corpus:
        assert corpus.lookup_password("P@ssw0rd") == hibp.expected(52579)
        assert corpus.contains_password("P@ssw0rd")
        assert not corpus.contains_password("p@ssw0rd")
        assert not corpus.contains_password("correct horse battery staple purple")


def test_empty_corpus_is_valid_and_misses_everything(tmp_path: Path, hibp: Any) -> None:
    source = tmp_path / "empty.txt"
    source.write_bytes(b"")
    result = import_corpus([source], tmp_path / "empty.corpus", bucket_bits=12)
    assert result.count == 0
    with BreachCorpus(tmp_path / "empty.corpus") as corpus:
        corpus.verify()
        assert corpus.count == 0
        assert all(corpus.lookup_sha1(d) is None for d in hibp.non_members(1000, []))
        assert corpus.lookup_sha1(b"\0" * 20) is None
        assert corpus.lookup_sha1(b"\xff" * 20) is None


def test_extreme_digests_land_in_first_and_last_bucket(tmp_path: Path, hibp: Any) -> None:
    entries = {b"\0" * 20: 3, b"\xff" * 20: 4, **hibp.entries(100)}
    with BreachCorpus(_build(tmp_path, hibp, entries, bucket_bits=8)) as corpus:
        assert corpus.lookup_sha1(b"\0" * 20) == 3
        assert corpus.lookup_sha1(b"\xff" * 20) == 4
        assert corpus.lookup_sha1(b"\0" * 4 + b"\1" + b"\0" * 15) is None  # bit 39 differs


def test_digest_of_wrong_length_is_refused(tmp_path: Path, hibp: Any) -> None:
    with (
        BreachCorpus(_build(tmp_path, hibp, hibp.entries(10))) as corpus,
        pytest.raises(ValueError, match="20 bytes"),
    ):
        corpus.lookup_sha1(b"\1" * 19)


def test_lookup_after_close_raises(tmp_path: Path, hibp: Any) -> None:
    corpus = BreachCorpus(_build(tmp_path, hibp, hibp.entries(10)))
    corpus.close()
    corpus.close()  # idempotent
    with pytest.raises(ValueError):
        corpus.lookup_sha1(b"\1" * 20)


def test_truncated_file_is_refused_on_open(tmp_path: Path, hibp: Any) -> None:
    path = _build(tmp_path, hibp, hibp.entries(2000), bucket_bits=12)
    data = path.read_bytes()
    for size in (len(data) - 1, len(data) // 2, HEADER_SIZE, 100):
        cut = tmp_path / f"cut-{size}.corpus"
        cut.write_bytes(data[:size])
        with pytest.raises(CorpusTruncatedError, match="truncated"):
            BreachCorpus(cut)
    longer = tmp_path / "longer.corpus"
    longer.write_bytes(data + b"\0")
    with pytest.raises(CorpusTruncatedError):
        BreachCorpus(longer)


def test_not_a_corpus_and_bad_header_are_refused(tmp_path: Path, hibp: Any) -> None:
    text = hibp.write_file(tmp_path / "pwned.txt", hibp.entries(10))
    with pytest.raises(CorpusFormatError, match="not a Sekisho breach corpus"):
        BreachCorpus(text)
    path = _build(tmp_path, hibp, hibp.entries(10), bucket_bits=8)
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01  # inside the header fields
    path.write_bytes(bytes(data))
    with pytest.raises(CorpusFormatError, match="header"):
        BreachCorpus(path)
    with pytest.raises(CorpusError, match="cannot open"):
        BreachCorpus(tmp_path / "missing.corpus")


@pytest.mark.parametrize("section", ["remainders", "counts"])
def test_corrupted_byte_is_detected_by_verify(tmp_path: Path, hibp: Any, section: str) -> None:
    path = _build(tmp_path, hibp, hibp.entries(3000), bucket_bits=12)
    with BreachCorpus(path) as corpus:
        corpus.verify()
        layout = corpus.info.layout
    offset = layout.rem_offset + 1234 if section == "remainders" else layout.codes_offset + 77
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))
    # The cheap checks on open cannot see it; verify() does.
    with BreachCorpus(path) as corpus, pytest.raises(CorpusChecksumError, match=section):
        corpus.verify()


def test_corrupted_index_is_refused_on_open(tmp_path: Path, hibp: Any) -> None:
    path = _build(tmp_path, hibp, hibp.entries(3000), bucket_bits=12)
    data = bytearray(path.read_bytes())
    data[Layout(12, 4, 3000).index_offset + 8 * 100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorpusChecksumError, match="index"):
        BreachCorpus(path)


def test_measured_false_positive_rate_matches_n_over_2_to_the_bits(
    tmp_path: Path, hibp: Any
) -> None:
    # A deliberately narrow 24-bit fingerprint makes false positives common enough to count.
    entries = hibp.entries(50_000)
    path = _build(tmp_path, hibp, entries, bucket_bits=8, remainder_bytes=2)
    rng = random.Random(7)
    trials = 1_000_000
    with BreachCorpus(path) as corpus:
        expected_rate = false_positive_rate(corpus.count, 24)
        assert expected_rate == pytest.approx(corpus.count / 2**24)
        assert corpus.info.false_positive_rate == expected_rate
        hits = sum(corpus.lookup_sha1(rng.randbytes(20)) is not None for _ in range(trials))
    mean = trials * expected_rate  # ~2980; binomial sd ~54.5
    assert abs(hits - mean) < 5 * math.sqrt(mean * (1 - expected_rate))


def test_default_fingerprint_has_no_false_positive_in_a_million(tmp_path: Path, hibp: Any) -> None:
    entries = hibp.entries(20_000)
    path = _build(tmp_path, hibp, entries)
    rng = random.Random(8)
    with BreachCorpus(path) as corpus:
        assert corpus.info.layout.fingerprint_bits == 52
        assert corpus.info.false_positive_rate < 1e-11
        assert not any(corpus.lookup_sha1(rng.randbytes(20)) for _ in range(1_000_000))


def test_count_codes_are_exact_below_16_and_lower_bounds_within_an_eighth() -> None:
    assert encode_count(0) == 0
    assert [decode_count(encode_count(c)) for c in range(16)] == list(range(16))
    previous = 0
    for count in [*range(1, 5000), 52579, 10**6, 37_359_195, 2**33, 2**34 - 1]:
        code = encode_count(count)
        assert code >= previous  # monotone: a minimum-count policy compares codes safely
        previous = code
        low = decode_count(code)
        assert low <= count < low * 9 / 8 + 1
    assert encode_count(10**12) == 255
    assert decode_count(255) <= 10**12


def test_copying_a_corpus_keeps_it_valid(tmp_path: Path, hibp: Any) -> None:
    path = _build(tmp_path, hibp, hibp.entries(100), bucket_bits=8)
    copy = shutil.copy(path, tmp_path / "copy.corpus")
    with BreachCorpus(copy) as corpus:
        corpus.verify()
        assert corpus.count == 100
