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
from monitor.outputs._annotations import ANNOTATION_EXT, AnnotationWriter, annotation_name, stream_of_annotation
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
