"""Annotation files: every valid stream id has one safe file name wfdb writes and reads, and back again."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import wfdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Beat, LabeledBeat
from monitor.detect import TechnicalAlarm
from monitor.outputs import Locate, Located, stream_index
from monitor.outputs._annotations import (
    ANNOTATION_EXT,
    AnnotationWriter,
    annotation_name,
    annotation_record,
    stream_of_annotation,
)
from monitor.protocol import STREAM_PATTERN

FS = 360.0
NAMES = settings(deadline=None, derandomize=True, max_examples=500, suppress_health_check=list(HealthCheck))
LISTS = settings(deadline=None, derandomize=True, max_examples=150, suppress_health_check=list(HealthCheck))
FILES = settings(deadline=None, derandomize=True, max_examples=60, suppress_health_check=list(HealthCheck))

# the whole valid id space, dots, dashes and underscores made frequent (a plain regex strategy rarely tries them)
_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
stream_ids = st.one_of(
    st.from_regex(STREAM_PATTERN, fullmatch=True),
    st.builds(
        lambda first, rest: first + rest,
        st.sampled_from(_FIRST),
        st.text(st.sampled_from(_FIRST[-12:] + "._-"), max_size=63),
    ),
)
# wfdb's own rule for a record name (wfdb.io.annotation: no character outside [-\w])
WFDB_RECORD_NAME = re.compile(r"[-\w]+")


def labelled(stream: str, samples: list[int], label: str = "N") -> list[LabeledBeat]:
    window = np.zeros(8, dtype=np.float32)
    return [LabeledBeat(Beat(stream, s, FS, None, None, None, None, window, s - 4, 0.0), label) for s in samples]


def test_ids_wfdb_takes_keep_their_file_names() -> None:
    for stream in ("100", "bed-1", "icu_3", "B", "x" * 64, "0-_-0"):
        assert annotation_name(stream) == stream
        assert stream_of_annotation(stream) == stream


def test_ids_with_dots_are_escaped() -> None:
    assert annotation_name("bed.12") == "_bed_2e12"
    assert annotation_name("a_b.c") == "_a_5fb_2ec"
    assert annotation_name("ward.3.bed-1") == "_ward_2e3_2ebed-1"
    assert stream_of_annotation("_bed_2e12") == "bed.12"


@pytest.mark.parametrize("stream", ["", "_a", "-a", ".a", "a b", "a/b", "é", "a" * 65, "a\x00"])
def test_an_invalid_id_has_no_file_name(stream: str) -> None:
    with pytest.raises(ValueError, match="not a valid stream id"):
        annotation_name(stream)


@pytest.mark.parametrize("name", ["", "_", "_abc", "_a_5f", "_a_2E", "_a_2f", "_a_", "a.b", "_a_2e_", "-a", "é"])
def test_a_name_no_stream_maps_to_is_refused(name: str) -> None:
    # _abc would be abc, which is its own name; _a_5f would be a_, also its own; _a_2f a slash
    with pytest.raises(ValueError, match="not an annotation record name"):
        stream_of_annotation(name)


@NAMES
@given(stream_ids)
def test_every_valid_id_maps_to_a_wfdb_record_name_and_back(stream: str) -> None:
    assert re.fullmatch(STREAM_PATTERN, stream)
    name = annotation_name(stream)
    assert WFDB_RECORD_NAME.fullmatch(name) and name.isascii()
    assert len(f"{name}.{ANNOTATION_EXT}") <= 1 + 3 * 64 + 4  # far below the 255 bytes of a file name
    assert stream_of_annotation(name) == stream
    assert (name == stream) == ("." not in stream)  # only what wfdb refuses is escaped


@LISTS
@given(st.lists(stream_ids, min_size=2, max_size=20, unique=True))
def test_different_ids_never_share_a_file(streams: list[str]) -> None:
    names = [annotation_name(s) for s in streams]
    assert len(set(names)) == len(streams)


@FILES
@given(stream_ids, st.lists(st.integers(0, 10**7), min_size=0, max_size=5, unique=True))
def test_every_valid_id_is_written_and_read_back(stream: str, samples: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        writer = AnnotationWriter(tmp)
        writer.register(stream, FS)
        writer.add(labelled(stream, samples, "V"))
        writer.add_technical(TechnicalAlarm(stream, "leads off", 5, 9), FS)
        writer.add_rhythm(stream, FS, 7, "(VT")
        path = writer.write(stream)
        assert path == Path(tmp) / f"{annotation_name(stream)}.{ANNOTATION_EXT}"
        assert [p.name for p in Path(tmp).iterdir()] == [path.name]  # nothing else left beside it
        ann = wfdb.rdann(str(path.with_suffix("")), ANNOTATION_EXT)
        assert stream_of_annotation(ann.record_name) == stream
        assert ann.fs == FS
        assert sorted(ann.sample.tolist()) == sorted([*samples, 5, 9, 7])
        assert ann.symbol.count("V") == len(samples) and ann.symbol.count("~") == 2


def test_a_stream_with_dots_gets_its_file_beside_the_others(tmp_path: Path) -> None:
    writer = AnnotationWriter(tmp_path)
    for stream in ("bed.12", "bed-12", "bed_12"):
        writer.add(labelled(stream, [100, 460]))
    written = writer.write_all()
    assert sorted(p.name for p in written) == ["_bed_2e12.mon", "bed-12.mon", "bed_12.mon"]
    assert sorted(stream_of_annotation(p.stem) for p in tmp_path.glob("*.mon")) == ["bed-12", "bed.12", "bed_12"]
    assert writer.unwritten() == []
    assert wfdb.rdann(str(tmp_path / "_bed_2e12"), "mon").sample.tolist() == [100, 460]


# --- device index spaces: one file per segment label ----------------------------------------------------------

# segment labels as the ingest makes them: b<boot> (boot: 1-64 of [A-Za-z0-9._:-]) and s<n>
_BOOT_CHARS = "ABCZabcz0189._:-"
labels = st.one_of(
    st.builds(lambda boot: "b" + boot, st.text(st.sampled_from(_BOOT_CHARS), min_size=1, max_size=64)),
    st.builds(lambda n: f"s{n}", st.integers(1, 10**9)),
    st.from_regex(r"[A-Za-z0-9._:-]{1,65}", fullmatch=True),
)


def test_a_labelled_file_name_escapes_both_parts() -> None:
    assert annotation_name("100", "b7") == "_100__b7"
    assert annotation_name("bed.12", "ba:1") == "_bed_2e12__ba_3a1"
    assert annotation_name("a_b", "s3") == "_a_5fb__s3"
    assert annotation_name("x", ".b") == "_x___2eb"
    assert annotation_record("_100__b7") == ("100", "b7")
    assert annotation_record("_x___2eb") == ("x", ".b")
    assert annotation_record("100") == ("100", "") and annotation_record("_bed_2e12") == ("bed.12", "")
    assert annotation_record("100__b7") == ("100__b7", "")  # an id wfdb takes is its own first file, "__" or not
    assert annotation_name("a", "b_1") == "_a__b_5f1"
    assert stream_of_annotation("_bed_2e12__ba_3a1") == "bed.12"


@pytest.mark.parametrize("label", ["a b", "é", "a/b", "x" * 66, "a\x00"])
def test_an_invalid_label_has_no_file_name(label: str) -> None:
    with pytest.raises(ValueError, match="not a valid segment label"):
        annotation_name("100", label)


@pytest.mark.parametrize("name", ["_100__", "_100__b7_", "_100__b_2f", "_100__B_3A", "_a__b__c", "__b7"])
def test_a_labelled_name_no_stream_and_label_map_to_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an annotation record name"):
        annotation_record(name)


def test_a_name_too_long_for_a_file_is_a_clear_error() -> None:
    stream, label = "a" + "." * 63, "b" + ":" * 64
    with pytest.raises(ValueError, match="too long"):
        annotation_name(stream, label)


@NAMES
@given(stream_ids, labels)
def test_every_stream_and_label_map_to_a_wfdb_record_name_and_back(stream: str, label: str) -> None:
    try:
        name = annotation_name(stream, label)
    except ValueError as exc:  # only a name over a file name's 255 bytes
        assert "too long" in str(exc)
        assert len(annotation_name(stream)) + 2 + sum(1 if c.isalnum() or c == "-" else 3 for c in label) > 251
        return
    assert WFDB_RECORD_NAME.fullmatch(name) and name.isascii()
    assert len(f"{name}.{ANNOTATION_EXT}") <= 255
    assert annotation_record(name) == (stream, label)
    assert name != annotation_name(stream)  # never the stream's first file


@LISTS
@given(st.lists(st.tuples(stream_ids, st.one_of(st.just(""), labels)), min_size=2, max_size=20, unique=True))
def test_different_streams_and_labels_never_share_a_file(places: list[tuple[str, str]]) -> None:
    names = []
    for stream, label in places:
        try:
            names.append(annotation_name(stream, label))
        except ValueError:
            names.append(f"too long {stream} {label}")
    assert len(set(names)) == len(places)


def placed(offsets: dict[str, tuple[int, str, str | None]]) -> Locate:
    """A lookup where stream index ``s`` is in the segment of the largest start <= s: (start, label, boot)."""

    def locate(stream: str, sample: int) -> Located:
        start = max(k for k in (0, *(v[0] for v in offsets.values())) if k <= sample)
        for device_start, (seg_start, label, boot) in offsets.items():
            if seg_start == start:
                return Located(int(device_start) + sample - seg_start, boot, label, True)
        return Located(sample, None, "", True)

    return locate


def test_each_device_index_space_gets_its_own_file_with_the_devices_indices(tmp_path: Path) -> None:
    # stream indices 0..1999 are device 0..1999 of boot 1; from 2000 device 0.. of boot 2; from 5000 boot 1 again
    locate = placed({"0": (2000, "b2", "2"), "2600": (5000, "", "1")})
    writer = AnnotationWriter(tmp_path)
    writer.register("bed.1", FS)
    writer.add(labelled("bed.1", [100, 1900, 2100, 2500, 5100]), locate)
    writer.add_technical(TechnicalAlarm("bed.1", "leads off", 1950, 2050), FS, locate)  # across the reboot
    writer.add_rhythm("bed.1", FS, 2200, "(VT", locate)
    assert writer.labels("bed.1") == ["", "b2"]
    assert writer.write("bed.1") == tmp_path / "_bed_2e1.mon"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_bed_2e1.mon", "_bed_2e1__b2.mon"]
    first = wfdb.rdann(str(tmp_path / "_bed_2e1"), "mon")
    assert first.sample.tolist() == [100, 1900, 1950, 2700] and first.fs == FS
    assert first.symbol == ["N", "N", "~", "N"]
    second = wfdb.rdann(str(tmp_path / "_bed_2e1__b2"), "mon")
    assert second.sample.tolist() == [50, 100, 200, 500]
    assert second.symbol == ["~", "N", "+", "N"] and second.aux_note[0] == "(clean" and second.aux_note[2] == "(VT"
    assert annotation_record(second.record_name) == ("bed.1", "b2")


def test_a_file_that_fails_keeps_the_streams_other_files(tmp_path: Path) -> None:
    locate = placed({"0": (2000, "b2", "2")})
    writer = AnnotationWriter(tmp_path)
    writer.add(labelled("100", [100, 2100]), locate)
    (tmp_path / "_100__b2.mon").mkdir()  # the second file cannot be replaced
    (tmp_path / "_100__b2.mon" / "keep").write_text("x")
    with pytest.raises(OSError):
        writer.write("100")
    assert wfdb.rdann(str(tmp_path / "100"), "mon").sample.tolist() == [100]
    assert writer.unwritten() == ["100"]


def test_an_unbroken_stream_file_is_byte_identical_through_the_identity_lookup(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, locate in ((a, None), (b, stream_index)):
        writer = AnnotationWriter(folder)
        writer.register("100", FS)
        beats = labelled("100", [370, 660, 1020])
        if locate is None:
            writer.add(beats)
            writer.add_technical(TechnicalAlarm("100", "noisy signal", 400, 900), FS)
            writer.add_rhythm("100", FS, 500, "(VT")
        else:
            writer.add(beats, locate)
            writer.add_technical(TechnicalAlarm("100", "noisy signal", 400, 900), FS, locate)
            writer.add_rhythm("100", FS, 500, "(VT", locate)
        writer.write("100")
    assert [p.name for p in a.iterdir()] == [p.name for p in b.iterdir()] == ["100.mon"]
    assert (a / "100.mon").read_bytes() == (b / "100.mon").read_bytes()
