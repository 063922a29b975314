"""BreachCorpus: lookups, the two tiers, the file checks on open, verify(), false positives."""

from __future__ import annotations

import hashlib
import math
import random
import shutil
from collections.abc import Sequence
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
from sekisho.auth.breach.format import HEADER_SIZE, Layout, bucket_bits_for

P_AT_SSW0RD_SHA1 = "21BD12DC183F740EE76F27B78EB39C8AD972A757"  # REQUIREMENTS 15.2


def _build(tmp_path: Path, hibp: Any, entries: dict[bytes, int], **kw: Any) -> Path:
    source = hibp.write_file(tmp_path / "pwned.txt", entries)
    target = tmp_path / "pwned.corpus"
    import_corpus([source], target, **kw)
    return target


class _NoDiskTier(Sequence[int]):
    """Stands in for the rest section: any read fails the test."""

    def __len__(self) -> int:
        return 0

    def __getitem__(self, i: Any) -> Any:
        raise AssertionError("the disk tier was read")


@pytest.mark.parametrize(
    ("bucket_bits", "rest_bits"), [(8, 0), (12, 8), (16, 16), (20, 24), (24, 24)]
)
def test_round_trip_members_hit_with_counts_and_non_members_miss(
    tmp_path: Path, hibp: Any, bucket_bits: int, rest_bits: int
) -> None:
    entries = hibp.entries(5000)
    path = _build(tmp_path, hibp, entries, bucket_bits=bucket_bits, rest_bits=rest_bits)
    with BreachCorpus(path) as corpus:
        fingerprint_bits = bucket_bits + 12 + rest_bits
        assert corpus.info.layout.fingerprint_bits == fingerprint_bits
        if fingerprint_bits >= 36:  # no fingerprint collisions expected among 5000
            assert corpus.count == len(entries)
            assert all(corpus.lookup_sha1(d) == hibp.expected(c) for d, c in entries.items())
        else:  # colliding members share the larger count: never below their own
            assert all(corpus.lookup_sha1(d) >= hibp.expected(c) for d, c in entries.items())
        misses = hibp.non_members(5000, entries)
        hits = sum(corpus.lookup_sha1(d) is not None for d in misses)
        mean = 5000 * corpus.info.false_positive_rate
        assert hits <= mean + 6 * math.sqrt(mean + 1)


def test_layout_sizes_and_the_resident_tier_at_the_end(tmp_path: Path, hibp: Any) -> None:
    entries = hibp.entries(3000)
    path = _build(tmp_path, hibp, entries, bucket_bits=12, rest_bits=24)
    with BreachCorpus(path) as corpus:
        lay = corpus.info.layout
    assert (lay.rest_offset, lay.rest_size) == (4096, 4 * 3000)
    assert lay.index_offset == 4096 + 12288  # 12,000 bytes of rest, aligned to 4096
    assert lay.index_size == 8 * (4096 + 1)
    assert lay.blocks_offset == lay.index_offset + 36864  # 32,776 bytes of index, aligned
    assert lay.blocks_size == 16 * 4096 + 3000
    assert path.stat().st_size == lay.file_size == lay.blocks_offset + lay.blocks_size
    assert lay.resident_bytes == lay.file_size - lay.index_offset
    assert lay.disk_tier_bytes == 4 * 3000
    # At the full corpus's size: 0.40 GB + n of resident tier, 4 bytes a hash of disk tier.
    full = Layout(24, 24, 2_000_000_000)
    assert full.resident_bytes < 2.5e9 < full.file_size
    assert full.disk_tier_bytes == 8_000_000_000


def test_import_chooses_the_bucket_bits_from_the_input_size(tmp_path: Path, hibp: Any) -> None:
    assert [bucket_bits_for(n) for n in (0, 3, 65_536, 65_537, 10**7, 10**8, 2 * 10**9)] == [
        8,
        8,
        8,
        12,
        16,
        20,
        24,
    ]
    assert bucket_bits_for(10**11) == 24  # never beyond 24
    entries = hibp.entries(4000)
    result = import_corpus([hibp.write_file(tmp_path / "in.txt", entries)], tmp_path / "c")
    with BreachCorpus(tmp_path / "c") as corpus:
        # 4000 lines of 40 hex digits: an upper bound of ~5,000 hashes, 8 bucket bits.
        assert corpus.info.layout.bucket_bits == 8
        assert corpus.info.layout.fingerprint_bits == result.fingerprint_bits == 8 + 12 + 24
        assert result.resident_bytes == corpus.info.layout.resident_bytes
        assert all(corpus.lookup_sha1(d) == hibp.expected(c) for d, c in entries.items())


def test_portable_path_for_big_endian_hosts_gives_the_same_answers(
    tmp_path: Path, hibp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = hibp.entries(2000)
    path = _build(tmp_path, hibp, entries, bucket_bits=12)
    monkeypatch.setattr(corpus_module, "_NATIVE_LE", False)
    with BreachCorpus(path) as corpus:
        assert not isinstance(corpus._rest, memoryview)
        assert not isinstance(corpus._index, memoryview)
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
    result = import_corpus([source], tmp_path / "empty.corpus")
    assert result.count == 0
    with BreachCorpus(tmp_path / "empty.corpus") as corpus:
        corpus.verify()
        assert corpus.count == 0
        assert corpus.info.layout.rest_size == 0
        assert all(corpus.lookup_sha1(d) is None for d in hibp.non_members(1000, []))
        assert corpus.lookup_sha1(b"\0" * 20) is None
        assert corpus.lookup_sha1(b"\xff" * 20) is None


def test_extreme_digests_and_neighbours_one_bit_away(tmp_path: Path, hibp: Any) -> None:
    entries = {b"\0" * 20: 3, b"\xff" * 20: 4, **hibp.entries(100)}
    with BreachCorpus(_build(tmp_path, hibp, entries, bucket_bits=8)) as corpus:
        assert corpus.lookup_sha1(b"\0" * 20) == 3
        assert corpus.lookup_sha1(b"\xff" * 20) == 4
        # 8 + 4 + 8 + 24 = 44 fingerprint bits: 159..152 bucket, 151..148 sub-bucket,
        # 147..140 tag, 139..116 rest. Flipping any of them misses; bit 115 is not stored.
        for bit in (116, 139, 140, 147, 148, 151, 152, 159):
            assert corpus.lookup_sha1((1 << bit).to_bytes(20, "big")) is None
        assert corpus.lookup_sha1((1 << 115).to_bytes(20, "big")) == 3


def test_resident_tier_answers_most_misses_without_reading_the_disk_tier(
    tmp_path: Path, hibp: Any
) -> None:
    entries = hibp.entries(3000)
    with BreachCorpus(_build(tmp_path, hibp, entries, bucket_bits=12)) as corpus:
        misses = hibp.non_members(20_000, entries)
        ruled_out = [d for d in misses if not corpus.passes_resident_tier(d)]
        assert len(ruled_out) > 19_000  # pass rate ~3000 / 2**24
        assert all(corpus.passes_resident_tier(d) for d in entries)
        corpus._rest = _NoDiskTier()
        assert all(corpus.lookup_sha1(d) is None for d in ruled_out)
        with pytest.raises(AssertionError, match="disk tier"):
            corpus.lookup_sha1(next(iter(entries)))


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
    for offset in (11, 40, 100):  # geometry, offsets, a section digest
        bad = bytearray(data)
        bad[offset] ^= 0x01
        path.write_bytes(bytes(bad))
        with pytest.raises(CorpusFormatError, match="header"):
            BreachCorpus(path)
    with pytest.raises(CorpusError, match="cannot open"):
        BreachCorpus(tmp_path / "missing.corpus")


@pytest.mark.parametrize("version", [1, 3])
def test_other_format_versions_are_refused(tmp_path: Path, hibp: Any, version: int) -> None:
    path = _build(tmp_path, hibp, hibp.entries(10), bucket_bits=8)
    data = bytearray(path.read_bytes())
    data[8:10] = version.to_bytes(2, "little")
    path.write_bytes(bytes(data))
    message = "version 1 corpus: re-import with sekisho breach import" if version == 1 else "3"
    with pytest.raises(CorpusFormatError, match=message):
        BreachCorpus(path)


@pytest.mark.parametrize("section", ["rest", "blocks"])
def test_corrupted_byte_is_detected_by_verify(tmp_path: Path, hibp: Any, section: str) -> None:
    path = _build(tmp_path, hibp, hibp.entries(3000), bucket_bits=12)
    with BreachCorpus(path) as corpus:
        corpus.verify()
        lay = corpus.info.layout
    offset = lay.rest_offset + 1234 if section == "rest" else lay.blocks_offset + 777
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))
    # The cheap checks on open cannot see it; verify() does.
    with BreachCorpus(path) as corpus, pytest.raises(CorpusChecksumError, match=section):
        corpus.verify()


def test_corrupted_index_is_refused_on_open(tmp_path: Path, hibp: Any) -> None:
    path = _build(tmp_path, hibp, hibp.entries(3000), bucket_bits=12)
    data = bytearray(path.read_bytes())
    data[Layout(12, 24, 3000).index_offset + 8 * 100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorpusChecksumError, match="index"):
        BreachCorpus(path)


def test_corrupted_blocks_never_raise_anything_but_a_corpus_error(
    tmp_path: Path, hibp: Any
) -> None:
    entries = hibp.entries(3000)
    path = _build(tmp_path, hibp, entries, bucket_bits=8)
    with BreachCorpus(path) as corpus:
        lay = corpus.info.layout
        last_block = lay.blocks_offset + 16 * 255 + corpus._index[255]
    data = bytearray(path.read_bytes())
    data[last_block : last_block + 16] = b"\xff" * 16  # sub-bucket counts far too large
    path.write_bytes(bytes(data))
    probe = bytes.fromhex("FFFE" + "00" * 18)  # bucket FF, sub-bucket F
    with BreachCorpus(path) as corpus:
        with pytest.raises(CorpusChecksumError, match="out of range"):
            corpus.lookup_sha1(probe)
        with pytest.raises(CorpusChecksumError, match="out of range"):
            corpus.passes_resident_tier(probe)
        with pytest.raises(CorpusChecksumError, match="blocks"):
            corpus.verify()
        # Lookups elsewhere still answer.
        first_bucket = [d for d in entries if d[0] == 0]
        assert all(corpus.lookup_sha1(d) == hibp.expected(entries[d]) for d in first_bucket)


def test_measured_false_positive_and_resident_pass_rates(tmp_path: Path, hibp: Any) -> None:
    # A deliberately narrow geometry (8 bucket bits, 8 rest bits: a 28-bit fingerprint and a
    # 20-bit resident tier) makes both events common enough to count.
    entries = hibp.entries(50_000)
    path = _build(tmp_path, hibp, entries, bucket_bits=8, rest_bits=8)
    rng = random.Random(7)
    trials = 1_000_000
    with BreachCorpus(path) as corpus:
        fp_rate = false_positive_rate(corpus.count, 28)
        assert fp_rate == pytest.approx(corpus.count / 2**28)
        assert corpus.info.false_positive_rate == fp_rate
        assert corpus.info.resident_pass_rate == pytest.approx(corpus.count / 2**20)
        hits = passes = 0
        for _ in range(trials):
            digest = rng.randbytes(20)
            hits += corpus.lookup_sha1(digest) is not None
            passes += corpus.passes_resident_tier(digest)
    fp_mean = trials * fp_rate  # ~186; binomial sd ~13.6
    assert abs(hits - fp_mean) < 5 * math.sqrt(fp_mean * (1 - fp_rate))
    # A non-member passes when a stored record shares its top 20 bits: exactly (distinct
    # prefixes) / 2**20, which n / 2**20 bounds from above (prefixes collide a little).
    prefixes = len({int.from_bytes(d[:3], "big") >> 4 for d in entries})
    pass_rate = prefixes / 2**20
    assert pass_rate <= corpus.info.resident_pass_rate
    pass_mean = trials * pass_rate  # ~46,600; binomial sd ~210
    assert abs(passes - pass_mean) < 5 * math.sqrt(pass_mean * (1 - pass_rate))


def test_default_geometry_has_no_false_positive_in_a_million(tmp_path: Path, hibp: Any) -> None:
    entries = hibp.entries(20_000)
    path = _build(tmp_path, hibp, entries)
    rng = random.Random(8)
    with BreachCorpus(path) as corpus:
        assert corpus.info.layout.rest_bits == 24
        assert corpus.info.false_positive_rate < 1e-8
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
