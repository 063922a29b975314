"""import_corpus: the input shapes, sorting, duplicates, padding, bad input, atomic install."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from sekisho.auth.breach import (
    BreachCorpus,
    CorpusImportError,
    InvalidInputLine,
    extsort,
    import_corpus,
    importer,
    writer,
)

GEOMETRIES = [(20, 24), (8, 0), (16, 8), (12, 16)]  # (bucket_bits, rest_bits)


def _assert_corpus_holds(path: Path, hibp: Any, entries: dict[bytes, int]) -> None:
    with BreachCorpus(path) as corpus:
        corpus.verify()
        assert corpus.count == len(entries)
        for digest, count in entries.items():
            assert corpus.lookup_sha1(digest) == hibp.expected(count)
        assert not any(corpus.lookup_sha1(d) for d in hibp.non_members(2000, entries))


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    "shape",
    ["lf-upper", "crlf-lower", "gzip", "ranges", "ranges-gzip", "two-files", "range-file"],
)
def test_every_input_shape_gives_the_same_corpus(tmp_path: Path, hibp: Any, shape: str) -> None:
    entries = hibp.entries(4000)
    inputs = tmp_path / "in"
    inputs.mkdir()
    if shape == "lf-upper":
        paths = [hibp.write_file(inputs / "pwned.txt", entries)]
    elif shape == "crlf-lower":
        paths = [hibp.write_file(inputs / "pwned.txt", entries, crlf=True, lower=True)]
    elif shape == "gzip":
        paths = [hibp.write_file(inputs / "pwned.txt.gz", entries, gz=True, crlf=True)]
    elif shape == "ranges":
        paths = [hibp.write_ranges(inputs / "ranges", entries)]
    elif shape == "ranges-gzip":
        paths = [hibp.write_ranges(inputs / "ranges", entries, gz_every=2)]
    elif shape == "two-files":  # several PATHs in hash order: still the streaming path
        items = sorted(entries.items())
        paths = [
            hibp.write_file(inputs / "a.txt", dict(items[:1500])),
            hibp.write_file(inputs / "b.txt", dict(items[1500:])),
        ]
    else:  # a single range file given by name
        digest = bytes.fromhex("21BD12DC183F740EE76F27B78EB39C8AD972A757")
        entries = {digest: 52579}
        (inputs / "21BD1.txt").write_bytes(b"2DC183F740EE76F27B78EB39C8AD972A757:52579\r\n")
        paths = [inputs / "21BD1.txt"]
    result = import_corpus(paths, tmp_path / "pwned.corpus")
    assert result.sorted_input
    assert (result.count, result.lines, result.duplicates) == (len(entries), len(entries), 0)
    _assert_corpus_holds(tmp_path / "pwned.corpus", hibp, entries)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(("bucket_bits", "rest_bits"), GEOMETRIES)
def test_range_directory_with_every_geometry(
    tmp_path: Path, hibp: Any, bucket_bits: int, rest_bits: int
) -> None:
    entries = hibp.entries(3000)
    ranges = hibp.write_ranges(tmp_path / "ranges", entries)
    (ranges / "README.md").write_text("not a range file\n")
    target = tmp_path / "pwned.corpus"
    import_corpus([ranges], target, bucket_bits=bucket_bits, rest_bits=rest_bits)
    whole = tmp_path / "whole.corpus"
    import_corpus(
        [hibp.write_file(tmp_path / "all.txt", entries)],
        whole,
        bucket_bits=bucket_bits,
        rest_bits=rest_bits,
    )
    # Same fingerprints, same bytes apart from the creation time in the header.
    assert target.read_bytes()[4096:] == whole.read_bytes()[4096:]


@pytest.mark.parametrize(("bucket_bits", "rest_bits"), GEOMETRIES)
def test_buckets_spanning_many_small_batches(
    tmp_path: Path,
    hibp: Any,
    monkeypatch: pytest.MonkeyPatch,
    bucket_bits: int,
    rest_bits: int,
) -> None:
    monkeypatch.setattr(importer, "BATCH", 37)  # batch edges fall inside buckets
    monkeypatch.setattr(writer, "_MAX_SPAN", 5)  # and sparse writes are split
    entries = hibp.entries(3000, seed=5)
    source = hibp.write_file(tmp_path / "pwned.txt", entries)
    small = tmp_path / "small.corpus"
    import_corpus([source], small, bucket_bits=bucket_bits, rest_bits=rest_bits, block_bytes=1000)
    monkeypatch.setattr(importer, "BATCH", 1 << 16)
    monkeypatch.setattr(writer, "_MAX_SPAN", 1 << 20)
    big = tmp_path / "big.corpus"
    import_corpus([source], big, bucket_bits=bucket_bits, rest_bits=rest_bits)
    assert small.read_bytes()[4096:] == big.read_bytes()[4096:]
    if bucket_bits + 12 + rest_bits >= 40:
        _assert_corpus_holds(small, hibp, entries)


def test_unsorted_input_goes_through_the_external_sort(
    tmp_path: Path, hibp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extsort, "_MAX_FAN_IN", 4)  # also exercise the intermediate merges
    entries = hibp.entries(6000)
    source = hibp.write_file(tmp_path / "shuffled.txt", entries, shuffle=True)
    progress: list[tuple[int, int]] = []
    result = import_corpus(
        [source],
        tmp_path / "pwned.corpus",
        run_records=500,
        block_bytes=4096,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert not result.sorted_input
    assert result.runs >= 12
    _assert_corpus_holds(tmp_path / "pwned.corpus", hibp, entries)
    assert _leftovers(tmp_path) == []
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert progress[-1][0] == progress[-1][1]


def test_unsorted_input_that_fits_in_one_run_sorts_in_memory(tmp_path: Path, hibp: Any) -> None:
    entries = hibp.entries(3000)
    items = sorted(entries.items())
    paths = [  # sorted files given in the wrong order
        hibp.write_file(tmp_path / "b.txt", dict(items[1000:])),
        hibp.write_file(tmp_path / "a.txt", dict(items[:1000])),
    ]
    result = import_corpus(paths, tmp_path / "pwned.corpus")
    assert (result.sorted_input, result.runs) == (False, 0)
    _assert_corpus_holds(tmp_path / "pwned.corpus", hibp, entries)


@pytest.mark.parametrize("shuffle", [False, True])
def test_duplicates_are_merged_keeping_the_larger_count(
    tmp_path: Path, hibp: Any, shuffle: bool
) -> None:
    entries = hibp.entries(2000)
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    hibp.write_file(first, entries, shuffle=shuffle)
    bumped = {d: c + 1000 for d, c in list(entries.items())[::2]}
    hibp.write_file(second, bumped, shuffle=shuffle)
    result = import_corpus([first, second], tmp_path / "pwned.corpus", run_records=300)
    assert result.duplicates == len(bumped)
    assert result.count == len(entries)
    _assert_corpus_holds(tmp_path / "pwned.corpus", hibp, {**entries, **bumped})


def test_duplicate_lines_in_one_sorted_file(
    tmp_path: Path, hibp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH", 7)  # pairs straddle batch edges too
    entries = hibp.entries(500)
    bumped = {d: c * 3 + 20 for d, c in entries.items()}
    first, second = hibp.lines(entries), hibp.lines(bumped)
    pairs = zip(first.splitlines(True), second.splitlines(True), strict=True)
    (tmp_path / "pwned.txt").write_bytes(b"".join(a + b for a, b in pairs))
    result = import_corpus([tmp_path / "pwned.txt"], tmp_path / "pwned.corpus", block_bytes=777)
    assert (result.sorted_input, result.duplicates, result.count) == (True, 500, 500)
    _assert_corpus_holds(tmp_path / "pwned.corpus", hibp, bumped)


def test_padding_and_blank_lines_are_skipped(tmp_path: Path, hibp: Any) -> None:
    entries = hibp.entries(300)
    padding = hibp.non_members(50, entries, seed=9)
    ranges = hibp.write_ranges(tmp_path / "ranges", entries)
    for digest in padding:  # appended unsorted, like the API's padding
        text = digest.hex().upper()
        with open(ranges / f"{text[:5]}.txt", "ab") as f:
            f.write(b"\r\n%s:0\r\n" % text[5:].encode())
    real = next(iter(sorted(entries)))
    with open(ranges / f"{real.hex().upper()[:5]}.txt", "ab") as f:
        f.write(b"%s:0\r\n" % real.hex().upper()[5:].encode())  # a padding twin of a real line
    result = import_corpus([ranges], tmp_path / "pwned.corpus")
    assert result.padding_lines == 51
    assert result.sorted_input
    _assert_corpus_holds(tmp_path / "pwned.corpus", hibp, entries)


def test_byte_order_mark_is_ignored(tmp_path: Path, hibp: Any) -> None:
    entries = hibp.entries(20)
    (tmp_path / "pwned.txt").write_bytes(b"\xef\xbb\xbf" + hibp.lines(entries, crlf=True))
    import_corpus([tmp_path / "pwned.txt"], tmp_path / "pwned.corpus")
    _assert_corpus_holds(tmp_path / "pwned.corpus", hibp, entries)


GOOD = b"21BD12DC183F740EE76F27B78EB39C8AD972A757:52579"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"21BD12DC183F740EE76F27B78EB39C8AD972A75G:3", "40 hex digits"),
        (b"21BD12DC183F740EE76F27B78EB39C8AD972A75:3", "40 hex digits"),
        (b"21BD12DC183F740EE76F27B78EB39C8AD972A7577:3", "40 hex digits"),
        (b"21BD12DC183F740EE76F27B78EB39C8AD972A757", "missing ':COUNT'"),
        (b"21BD12DC183F740EE76F27B78EB39C8AD972A757:", "not a decimal number"),
        (b"21BD12DC183F740EE76F27B78EB39C8AD972A757:12a", "not a decimal number"),
        (b"21BD12DC183F740EE76F27B78EB39C8AD972A757:1:2", "not a decimal number"),
        (b"21BD12DC183F740EE76F27B78EB39C8AD972A757: 12", "not a decimal number"),
        (b"21BD12DC183F740EE\r76F27B78EB39C8AD972A757:12", "carriage return"),
        (b"hunter2-is-my-password", "missing ':COUNT'"),
        ("パスワード".encode(), "missing ':COUNT'"),
    ],
)
def test_invalid_line_names_file_and_line_and_keeps_old_corpus(
    tmp_path: Path, hibp: Any, bad: bytes, reason: str
) -> None:
    target = tmp_path / "pwned.corpus"
    import_corpus([hibp.write_file(tmp_path / "old.txt", hibp.entries(50))], target)
    before = target.read_bytes()
    lines = hibp.lines(hibp.entries(3000), crlf=True).splitlines(keepends=True)
    lines.insert(2100, b"\r\n")  # blank lines count as lines
    lines.insert(2500, bad + b"\r\n")
    source = tmp_path / "new.txt.gz"
    source.write_bytes(gzip.compress(b"".join(lines)))
    with pytest.raises(InvalidInputLine) as caught:
        import_corpus([source], target, block_bytes=8192)
    assert caught.value.line_number == 2501
    assert str(caught.value).startswith(f"{source}:2501: ")
    assert reason in str(caught.value)
    assert b"hunter2" not in str(caught.value).encode()  # input lines are never quoted
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_invalid_line_in_a_range_file(tmp_path: Path, hibp: Any) -> None:
    ranges = hibp.write_ranges(tmp_path / "ranges", hibp.entries(100))
    victim = sorted(ranges.iterdir())[40]
    victim.write_bytes(victim.read_bytes() + b"21BD12DC183F740EE76F27B78EB39C8AD972A757:1\r\n")
    with pytest.raises(InvalidInputLine, match=rf"{victim.name}:2: expected 35 hex digits"):
        import_corpus([ranges], tmp_path / "pwned.corpus")
    assert not (tmp_path / "pwned.corpus").exists()


def test_bad_paths_are_refused(tmp_path: Path, hibp: Any) -> None:
    with pytest.raises(CorpusImportError, match="cannot read input"):
        import_corpus([tmp_path / "missing.txt"], tmp_path / "pwned.corpus")
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(CorpusImportError, match="no range files"):
        import_corpus([tmp_path / "empty-dir"], tmp_path / "pwned.corpus")
    with pytest.raises(CorpusImportError, match="no input"):
        import_corpus([], tmp_path / "pwned.corpus")
    source = hibp.write_file(tmp_path / "pwned.txt", hibp.entries(5))
    with pytest.raises(CorpusImportError, match="directory"):
        import_corpus([source], tmp_path / "empty-dir")
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(gzip.compress(hibp.lines(hibp.entries(500)))[:-30])
    with pytest.raises(CorpusImportError, match=r"broken\.txt\.gz: cannot read input"):
        import_corpus([broken], tmp_path / "pwned.corpus")
    with pytest.raises(CorpusImportError, match="cannot create"):
        import_corpus([source], tmp_path / "no-such-dir" / "pwned.corpus")
    with pytest.raises(ValueError, match="bucket_bits"):
        import_corpus([source], tmp_path / "pwned.corpus", bucket_bits=10)
    with pytest.raises(ValueError, match="rest_bits"):
        import_corpus([source], tmp_path / "pwned.corpus", rest_bits=4)
    assert _leftovers(tmp_path) == []


def test_progress_reaches_the_total(tmp_path: Path, hibp: Any) -> None:
    source = hibp.write_file(tmp_path / "pwned.txt", hibp.entries(50_000))
    calls: list[tuple[int, int]] = []
    import_corpus(
        [source],
        tmp_path / "pwned.corpus",
        block_bytes=1 << 16,
        on_progress=lambda done, total: calls.append((done, total)),
    )
    size = source.stat().st_size
    assert calls[-1] == (size, size)
    assert all(0 <= d <= t == size for d, t in calls)
    assert len(calls) >= 2


def test_replaced_corpus_keeps_the_file_mode(tmp_path: Path, hibp: Any) -> None:
    source = hibp.write_file(tmp_path / "pwned.txt", hibp.entries(5))
    target = tmp_path / "pwned.corpus"
    import_corpus([source], target)
    assert target.stat().st_mode & 0o777 == 0o644
    target.chmod(0o640)
    import_corpus([source], target)
    assert target.stat().st_mode & 0o777 == 0o640


def _one_sub_bucket(n: int) -> dict[bytes, int]:
    """n distinct hashes that all share their first three hex digits: with 8 bucket bits,
    one bucket and one sub-bucket."""
    return {bytes.fromhex(f"ABC{i:05X}" + "0" * 32): 2 for i in range(n)}


def test_a_full_sub_bucket_is_fine_and_one_more_hash_is_an_import_error(
    tmp_path: Path, hibp: Any
) -> None:
    target = tmp_path / "pwned.corpus"
    full = _one_sub_bucket(255)
    import_corpus([hibp.write_file(tmp_path / "full.txt", full)], target, bucket_bits=8)
    _assert_corpus_holds(target, hibp, full)
    before = target.read_bytes()
    over = hibp.write_file(tmp_path / "over.txt", _one_sub_bucket(256))
    with pytest.raises(CorpusImportError, match=r"sub-bucket AB:C holds more than 255"):
        import_corpus([over], target, bucket_bits=8)
    assert target.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_an_oversized_bucket_is_refused_before_it_ends(
    tmp_path: Path, hibp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH", 512)  # the bucket spans many batches
    lines = _one_sub_bucket(5000)
    with pytest.raises(CorpusImportError, match=r"sub-bucket AB:C holds more than 255"):
        import_corpus([hibp.write_file(tmp_path / "in.txt", lines)], tmp_path / "c")
    assert _leftovers(tmp_path) == []
