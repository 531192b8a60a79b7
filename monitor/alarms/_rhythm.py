"""Rhythm logic: per-stream alarm state machines over beat labels, RR intervals and signal quality.

A :class:`RhythmAnalyzer` runs on the stream's own sample clock: it takes
labelled beats (:meth:`~RhythmAnalyzer.on_beat`), the signal-quality verdict of
each judged block (:meth:`~RhythmAnalyzer.on_quality`), and is told how far the
stream is known to be complete (:meth:`~RhythmAnalyzer.advance`: every beat
before that sample has been delivered). It evaluates every alarm condition at
each beat and at each second of signal, and returns :class:`AlarmEvent` onsets,
updates and ends plus one :class:`Vitals` record per second. Nothing in it
reads a wall clock, so tests drive it with synthetic beats and the same input
always gives the same alarms.

The conditions (thresholds in :class:`RhythmConfig`, adult defaults after the
arrhythmia alarms of commercial bedside monitors and the PhysioNet/CinC 2015
alarm definitions):

======================  ========  ==========================================================
alarm                   priority  condition
======================  ========  ==========================================================
``asystole``            high      no beat for ``asystole_s`` while the signal is usable (a
                                  lost or flat signal is a technical alarm instead)
``vfib``                high      the signal is fibrillation-like (VF-filter leakage, see
                                  :mod:`monitor.detect._quality`) in ``vf_on_blocks`` of the last
                                  ``vf_window_blocks`` one-second blocks
``vtach``               high      a run of at least ``vt_beats`` V beats at a rate of at least
                                  ``vt_bpm``
``brady_extreme``       high      heart rate below ``brady_extreme_bpm`` for ``rate_on_s``
``tachy_extreme``       high      heart rate above ``tachy_extreme_bpm`` for ``rate_on_s``
``vrun``                medium    a run of at least ``run_beats`` V beats (non-sustained
                                  VT) at a rate of at least ``run_bpm``, not (yet) VT
``pause``               medium    no beat for ``pause_s`` (shorter than asystole)
``brady``/``tachy``     medium    heart rate below ``brady_bpm`` / above ``tachy_bpm`` for
                                  ``rate_on_s``
``afib``                medium    RR irregularity (median absolute successive difference over
                                  the median RR, V beats excluded, last ``af_window`` intervals)
                                  at least ``af_irregularity`` for ``af_on_beats`` beats
``svt``                 medium    a run of at least ``svt_beats`` S beats at a rate of at least
                                  ``svt_bpm``
``bigeminy``            medium    ``bigeminy_cycles`` V-N cycles in a row
``trigeminy``           medium    ``trigeminy_cycles`` V-N-N cycles in a row
``couplet``             low       two V beats in a row
``pvc_frequent``        low       at least ``pvc_per_min`` V beats in the last minute
======================  ========  ==========================================================

Lifecycle: sustained conditions (asystole, VF, VT, rates, AF, bigeminy,
trigeminy, frequent PVCs) start when the condition holds and end once it has
been absent for ``clear_s``; event conditions (pause, runs, couplets, SVT runs)
stay on for ``hold_s`` after their last occurrence. An alarm sends an update
when its figures change (heart rate by at least ``update_bpm``, a longer run),
at most every ``update_s``. A more serious alarm supersedes the related lesser
ones (VF over VT, runs and tachycardia; asystole over pause and bradycardia; VT
over runs, couplets and tachycardia; AF over SVT runs; extreme rates over plain ones): they end
with the reason ``superseded by ...`` and cannot start while it lasts.

Heart rate (reported every second): the intervals between the most recent
beats are taken back from the latest beat until they span at least
``hr_window_s`` seconds and are an even number (at most ``hr_max_beats``
intervals); the rate is the number of intervals over their total duration, so
alternating (bigeminal) and irregular rhythms give their true mean rate. When
the time since the last beat exceeds every interval in that window, the wait so
far counts as one more interval, so the rate falls during a pause; it reads 0
once the wait reaches ``asystole_s``.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import tomllib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import ConfigError, require_positive
from monitor.vocabulary import ALARM_KINDS, CLINICAL_KINDS, MEDIUM

__all__ = [
    "AlarmEvent",
    "RhythmAnalyzer",
    "RhythmConfig",
    "RhythmSettings",
    "Vitals",
    "load_rhythm_settings",
]

#: alarm -> the lesser alarms it supersedes.
SUPERSEDES: dict[str, tuple[str, ...]] = {
    "vfib": ("vtach", "vrun", "couplet", "tachy", "tachy_extreme", "svt", "afib", "bigeminy", "trigeminy"),
    "asystole": ("pause", "brady", "brady_extreme"),
    "vtach": ("vrun", "couplet", "tachy", "tachy_extreme", "svt"),
    "brady_extreme": ("brady",),
    "tachy_extreme": ("tachy",),
    "vrun": ("couplet",),
    "afib": ("svt",),
}
_EVENT_KINDS = frozenset({"pause", "vrun", "couplet", "svt"})
_FIBRILLATION = "fibrillation-like"
_UNUSABLE = frozenset({"signal lost", "leads off"})


@dataclass(frozen=True)
class RhythmConfig:
    """Alarm thresholds for one stream (adult defaults; see the module docstring)."""

    asystole_s: float = 4.0
    pause_s: float = 2.5
    vf_on_blocks: int = 4
    vf_window_blocks: int = 5
    vt_beats: int = 8
    vt_bpm: float = 120.0
    run_beats: int = 3
    run_bpm: float = 100.0
    svt_beats: int = 5
    svt_bpm: float = 100.0
    bigeminy_cycles: int = 4
    trigeminy_cycles: int = 4
    pvc_per_min: float = 10.0
    brady_bpm: float = 50.0
    brady_extreme_bpm: float = 40.0
    tachy_bpm: float = 120.0
    tachy_extreme_bpm: float = 140.0
    rate_on_s: float = 5.0
    rate_hysteresis_bpm: float = 5.0
    af_window: int = 32
    af_irregularity: float = 0.10
    af_on_beats: int = 32
    hr_window_s: float = 4.0
    hr_max_beats: int = 16
    clear_s: float = 5.0
    hold_s: float = 10.0
    update_s: float = 5.0
    update_bpm: float = 5.0
    disabled: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.disabled) - set(CLINICAL_KINDS))
        if unknown:
            raise ConfigError(f"rhythm disabled: unknown alarm kind(s) {unknown}; known: {sorted(CLINICAL_KINDS)}")
        numbers = [f for f in dataclasses.fields(self) if f.name != "disabled"]
        require_positive(self, *(f.name for f in numbers), prefix="rhythm ")
        for f in numbers:
            if f.type == "int" and not isinstance(getattr(self, f.name), int):
                raise ConfigError(f"rhythm {f.name} must be a whole number, got {getattr(self, f.name)!r}")
        if self.pause_s >= self.asystole_s:
            raise ConfigError(f"rhythm pause_s={self.pause_s} must be shorter than asystole_s={self.asystole_s}")
        if self.run_beats >= self.vt_beats:
            raise ConfigError(f"rhythm run_beats={self.run_beats} must be below vt_beats={self.vt_beats}")
        if self.vf_on_blocks > self.vf_window_blocks:
            raise ConfigError("rhythm vf_on_blocks must not exceed vf_window_blocks")
        if not self.brady_extreme_bpm < self.brady_bpm < self.tachy_bpm < self.tachy_extreme_bpm:
            raise ConfigError("rhythm rates must satisfy brady_extreme_bpm < brady_bpm < tachy_bpm < tachy_extreme_bpm")


@dataclass(frozen=True)
class RhythmSettings:
    """Defaults for every stream plus per-stream overrides."""

    default: RhythmConfig = field(default_factory=RhythmConfig)
    streams: Mapping[str, RhythmConfig] = field(default_factory=dict)

    def for_stream(self, stream: str) -> RhythmConfig:
        return self.streams.get(stream, self.default)


def _config_from(table: Mapping[str, Any], base: RhythmConfig, where: str) -> RhythmConfig:
    known = {f.name: f for f in dataclasses.fields(RhythmConfig)}
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}; known settings: {', '.join(sorted(known))}")
        if key == "disabled":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: disabled must be a list of alarm kinds, got {value!r}")
            value = tuple(value)
        elif known[key].type == "float" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_rhythm_settings(path: str | Path | None) -> RhythmSettings:
    """Read a TOML file: top-level settings are the defaults, ``[streams.<id>]`` tables override them.

    Unknown keys are an error (a misspelt threshold must not fall back to a default silently).
    """
    if path is None:
        return RhythmSettings()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--rhythm-config {p}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--rhythm-config {p}: cannot read it ({exc})") from None
    streams_table = data.pop("streams", {})
    if not isinstance(streams_table, dict):
        raise ConfigError(f"{p}: [streams] must be a table of per-stream tables")
    default = _config_from(data, RhythmConfig(), str(p))
    streams = {}
    for sid, table in streams_table.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{p}: [streams.{sid}] must be a table")
        streams[sid] = _config_from(table, default, f"{p} [streams.{sid}]")
    return RhythmSettings(default, streams)


@dataclass(frozen=True)
class AlarmEvent:
    """A transition of one alarm episode. Samples are in the stream's own indexing.

    ``onset_sample`` is where the condition began (e.g. the last beat before an
    asystole); ``sample`` is where this transition was decided (for an onset:
    the signal that had to arrive before the alarm could be raised).
    """

    stream: str
    kind: str
    state: str  # "onset" | "update" | "end"
    onset_sample: int
    sample: int
    fs: float
    text: str
    details: Mapping[str, float | int | None] = field(default_factory=dict)
    end_reason: str | None = None
    category: str = "clinical"

    @property
    def priority(self) -> str:
        return ALARM_KINDS[self.kind].priority if self.kind in ALARM_KINDS else MEDIUM

    @property
    def alarm_id(self) -> str:
        return f"{self.stream}:{self.kind}:{self.onset_sample}"


@dataclass(frozen=True)
class Vitals:
    """Once-a-second values of one stream."""

    stream: str
    sample: int
    fs: float
    hr: float | None
    pvc_per_min: float
    quality: str
    active: tuple[str, ...]


@dataclass
class _Active:
    kind: str
    onset: int
    last_seen: int  # last sample at which the condition held
    last_update: int
    details: dict[str, float | int | None]


@dataclass
class _Beat:
    sample: int
    label: str


class RhythmAnalyzer:
    """Alarm state machines of one stream; see the module docstring."""

    def __init__(self, stream: str, fs: float, config: RhythmConfig | None = None, origin: int = 0) -> None:
        self.stream = stream
        self.fs = fs
        self.config = config or RhythmConfig()
        self.origin = origin
        self._tick = max(1, round(fs))
        self._next_tick = origin + self._tick
        self._pending: deque[_Beat] = deque()  # delivered, not yet processed
        self._beats: deque[_Beat] = deque(maxlen=max(64, 2 * self.config.af_window + 8))
        self._horizon = origin
        self._pvcs: deque[int] = deque()  # samples of V beats in the last minute
        self._quality: deque[tuple[int, str]] = deque(maxlen=64)  # (block end, state)
        self._af_run = 0
        self._rate_run: dict[str, int] = {}  # kind -> first sample the rate condition held
        self._active: dict[str, _Active] = {}
        self._events: list[AlarmEvent] = []
        self._vitals: list[Vitals] = []
        self.hr: float | None = None
        self._arrived = origin

    # ------------------------------------------------------------ input
    def on_beat(self, sample: int, label: str) -> None:
        """A labelled beat. Labels may come back out of order (an alarm stream's newer beats are
        labelled first); beats are evaluated in sample order, up to the horizon given to :meth:`advance`."""
        beat = _Beat(sample, label)
        if not self._pending or self._pending[-1].sample <= sample:
            self._pending.append(beat)
        else:
            i = bisect.bisect_right([b.sample for b in self._pending], sample)
            self._pending.insert(i, beat)

    def on_quality(self, block_end: int, state: str, arrived: int | None = None) -> None:
        """The verdict of the signal block ending at ``block_end`` (``arrived``: the newest sample now)."""
        self._arrived = max(self._arrived, block_end, arrived or 0)
        self._quality.append((block_end, state))
        self._check_vf(block_end)

    def advance(self, horizon: int, arrived: int | None = None) -> tuple[list[AlarmEvent], list[Vitals]]:
        """Every beat before ``horizon`` has been delivered: evaluate up to there.

        ``arrived`` is the stream's newest sample at this moment (the decision
        sample of time-based onsets); defaults to ``horizon``.
        """
        arrived = max(horizon, arrived if arrived is not None else horizon)
        self._arrived = arrived
        while True:
            beat = self._pending[0] if self._pending else None
            if beat is not None and beat.sample < horizon and beat.sample < self._next_tick:
                self._pending.popleft()
                self._on_beat(beat)
            elif self._next_tick <= horizon:
                self._on_tick(self._next_tick)
                self._next_tick += self._tick
            else:
                break
        self._horizon = max(self._horizon, horizon)
        events, self._events = self._events, []
        vitals, self._vitals = self._vitals, []
        return events, vitals

    def finish(self, sample: int, reason: str = "stream ended") -> list[AlarmEvent]:
        """End every active alarm (stream end or shutdown)."""
        for kind in list(self._active):
            self._end(kind, sample, reason)
        events, self._events = self._events, []
        return events

    @property
    def pending(self) -> int:
        """Beats delivered but not yet evaluated."""
        return len(self._pending)

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(self._active)

    # ------------------------------------------------------------ beats
    def _on_beat(self, beat: _Beat) -> None:
        cfg = self.config
        prev = self._beats[-1] if self._beats else None
        self._beats.append(beat)
        s = beat.sample
        was_asystole = "asystole" in self._active
        if was_asystole:
            self._end("asystole", s, "beats resumed")
        if beat.label == "V":
            self._pvcs.append(s)
        while self._pvcs and self._pvcs[0] <= s - 60 * self.fs:
            self._pvcs.popleft()
        if prev is not None and (s - prev.sample) / self.fs >= cfg.pause_s and not was_asystole:
            gap = (s - prev.sample) / self.fs
            if self._usable_between(prev.sample, s):
                self._sustain("pause", prev.sample, s, {"pause_s": round(gap, 2)}, f"Pause {gap:.1f} s")
        self._check_runs(s)
        self._check_patterns(s)
        self._check_af(s)
        self._check_pvc_rate(s)

    def _run(self, label: str) -> list[_Beat]:
        out: list[_Beat] = []
        for b in reversed(self._beats):
            if b.label != label:
                break
            out.append(b)
        out.reverse()
        return out

    def _run_rate(self, run: list[_Beat]) -> float | None:
        if len(run) < 2:
            return None
        return 60.0 * (len(run) - 1) * self.fs / (run[-1].sample - run[0].sample)

    def _check_runs(self, s: int) -> None:
        cfg = self.config
        v = self._run("V")
        rate = self._run_rate(v)
        if len(v) >= cfg.vt_beats and rate is not None and rate >= cfg.vt_bpm:
            self._sustain("vtach", v[0].sample, s, {"hr": round(rate, 1), "beats": len(v)}, f"VT {rate:.0f} bpm")
        elif len(v) >= cfg.run_beats and rate is not None and rate >= cfg.run_bpm:
            self._sustain("vrun", v[0].sample, s, {"hr": round(rate, 1), "beats": len(v)}, f"Run of {len(v)} PVCs")
        elif len(v) == 2:
            self._sustain("couplet", v[0].sample, s, {"beats": 2}, "Couplet")
        sv = self._run("S")
        rate = self._run_rate(sv)
        if len(sv) >= cfg.svt_beats and rate is not None and rate >= cfg.svt_bpm:
            self._sustain("svt", sv[0].sample, s, {"hr": round(rate, 1), "beats": len(sv)}, f"SVT {rate:.0f} bpm")

    def _check_patterns(self, s: int) -> None:
        cfg = self.config
        labels = "".join("V" if b.label == "V" else "N" for b in self._beats)
        for kind, unit, cycles in (
            ("bigeminy", "NV", cfg.bigeminy_cycles),
            ("trigeminy", "NNV", cfg.trigeminy_cycles),
        ):
            n = len(unit) * cycles
            if len(labels) >= n and labels[-n:] == unit * cycles:
                start = self._beats[-n].sample
                self._sustain(kind, start, s, {}, ALARM_KINDS[kind].text)
            elif len(labels) >= len(unit) and labels[-len(unit) :] == unit and kind in self._active:
                self._sustain(kind, self._active[kind].onset, s, {}, ALARM_KINDS[kind].text)

    def _check_af(self, s: int) -> None:
        cfg = self.config
        beats = list(self._beats)
        rr: list[float] = []
        for a, b in itertools.pairwise(beats):
            if a.label != "V" and b.label != "V":
                rr.append((b.sample - a.sample) / self.fs)
        rr = rr[-cfg.af_window :]
        if len(rr) < cfg.af_window:
            return
        diffs = sorted(abs(y - x) for x, y in itertools.pairwise(rr))
        med_rr = sorted(rr)[len(rr) // 2]
        irregularity = diffs[len(diffs) // 2] / med_rr if med_rr > 0 else 0.0
        if irregularity >= cfg.af_irregularity:
            self._af_run += 1
            if self._af_run >= cfg.af_on_beats or "afib" in self._active:
                hr = 60.0 / (sum(rr) / len(rr))
                back = min(self._af_run, len(beats))
                onset = self._active["afib"].onset if "afib" in self._active else beats[-back].sample
                self._sustain("afib", onset, s, {"hr": round(hr, 1), "irregularity": round(irregularity, 3)}, "AF")
        else:
            self._af_run = 0

    def _check_pvc_rate(self, s: int) -> None:
        n = len(self._pvcs)
        if n >= self.config.pvc_per_min:
            self._sustain("pvc_frequent", self._pvcs[0], s, {"pvc_per_min": n}, f"PVCs {n}/min")

    # ------------------------------------------------------------ time
    def _on_tick(self, t: int) -> None:
        cfg = self.config
        last = self._beats[-1].sample if self._beats else None
        since = (t - (last if last is not None else self.origin)) / self.fs
        # asystole: no beat while the signal is usable and not fibrillation-like
        if last is not None and since >= cfg.asystole_s:  # (only once a beat has been seen)
            start = last
            if self._usable_between(start, t) and not self._is_active("vfib"):
                self._sustain("asystole", start, t, {"since_s": round(since, 1)}, "Asystole")
        usable = last is not None and self._usable_between(last, t)
        if last is not None and since >= cfg.pause_s and not self._is_active("asystole") and usable:
            self._sustain("pause", last, t, {"pause_s": round(since, 1)}, f"Pause {since:.1f} s")
        self.hr = hr = self._heart_rate(t)
        self._check_rates(t, hr)
        while self._pvcs and self._pvcs[0] <= t - 60 * self.fs:
            self._pvcs.popleft()
        self._expire(t)
        quality = self._quality[-1][1] if self._quality else "clean"
        self._vitals.append(Vitals(self.stream, t, self.fs, hr, float(len(self._pvcs)), quality, self.active))

    def _heart_rate(self, t: int) -> float | None:
        cfg = self.config
        beats = self._beats
        if not beats:
            return None
        if (t - beats[-1].sample) / self.fs >= cfg.asystole_s:
            return 0.0
        intervals: list[float] = []
        total = 0.0
        for i in range(len(beats) - 1, 0, -1):
            rr = (beats[i].sample - beats[i - 1].sample) / self.fs
            if len(intervals) >= cfg.hr_max_beats or (total >= cfg.hr_window_s and len(intervals) % 2 == 0):
                break
            intervals.append(rr)
            total += rr
        if not intervals:
            return None
        n = len(intervals)
        open_s = (t - beats[-1].sample) / self.fs
        if open_s > max(intervals):  # longer than any recent interval: the wait so far counts as one
            return 60.0 * (n + 1) / (total + open_s)
        return 60.0 * n / total

    def _check_rates(self, t: int, hr: float | None) -> None:
        cfg = self.config
        h = cfg.rate_hysteresis_bpm
        tests = {
            "brady_extreme": (hr is not None and 0 < hr < cfg.brady_extreme_bpm, cfg.brady_extreme_bpm + h),
            "brady": (hr is not None and 0 < hr < cfg.brady_bpm, cfg.brady_bpm + h),
            "tachy_extreme": (hr is not None and hr > cfg.tachy_extreme_bpm, cfg.tachy_extreme_bpm - h),
            "tachy": (hr is not None and hr > cfg.tachy_bpm, cfg.tachy_bpm - h),
        }
        for kind, (present, release) in tests.items():
            if kind in self._active:
                # hysteresis: stays on until the rate is back past the limit by rate_hysteresis_bpm
                still = hr is not None and (hr < release if kind.startswith("brady") else hr > release)
                if still:
                    self._sustain(kind, self._active[kind].onset, t, {"hr": round(hr or 0.0, 1)}, "")
                continue
            if present:
                first = self._rate_run.setdefault(kind, t)
                if (t - first) / self.fs >= cfg.rate_on_s:
                    text = f"{ALARM_KINDS[kind].text} {hr:.0f} bpm"
                    self._sustain(kind, first, t, {"hr": round(hr or 0.0, 1)}, text)
            else:
                self._rate_run.pop(kind, None)

    def _check_vf(self, t: int) -> None:
        cfg = self.config
        recent = [s for _, s in list(self._quality)[-cfg.vf_window_blocks :]]
        fib = sum(1 for s in recent if s == _FIBRILLATION)
        if fib >= cfg.vf_on_blocks or ("vfib" in self._active and fib > 0):
            onset = self._active["vfib"].onset if "vfib" in self._active else self._first_fib_block()
            self._sustain("vfib", onset, t, {"blocks": fib}, "VF/VFL")
        self._expire(t)

    def _first_fib_block(self) -> int:
        blocks = list(self._quality)[-self.config.vf_window_blocks :]
        for i, (end, state) in enumerate(blocks):
            if state == _FIBRILLATION:
                return end - self._tick if i == 0 else blocks[i - 1][0]
        return blocks[-1][0]

    def _usable_between(self, a: int, b: int) -> bool:
        """No block overlapping (a, b] was lost, flat or fibrillation-like (blocks not yet judged count as usable)."""
        for end, state in self._quality:
            if end > a and end - self._tick < b and (state in _UNUSABLE or state == _FIBRILLATION):
                return False
        return True

    # ------------------------------------------------------------ lifecycle
    def _is_active(self, kind: str) -> bool:
        return kind in self._active

    def _superseded(self, kind: str) -> str | None:
        for higher, lesser in SUPERSEDES.items():
            if kind in lesser and higher in self._active:
                return higher
        return None

    def _sustain(
        self,
        kind: str,
        onset: int,
        s: int,
        details: dict[str, float | int | None],
        text: str,
    ) -> None:
        """The condition of ``kind`` holds at sample ``s``."""
        if kind in self.config.disabled or self._superseded(kind) is not None:
            return
        act = self._active.get(kind)
        if act is None:
            decision = max(s, self._arrived)  # the signal that had arrived when it was decided
            self._active[kind] = _Active(kind, onset, s, s, dict(details))
            for lesser in SUPERSEDES.get(kind, ()):
                if lesser in self._active:
                    self._end(lesser, s, f"superseded by {kind}")
            self._emit(kind, "onset", onset, decision, text or ALARM_KINDS[kind].text, details)
            return
        act.last_seen = s
        changed = False
        for key, value in details.items():
            old = act.details.get(key)
            if isinstance(value, (int, float)) and isinstance(old, (int, float)):
                step = self.config.update_bpm if key == "hr" else 1
                if abs(value - old) >= step:
                    changed = True
        if changed and (s - act.last_update) / self.fs >= self.config.update_s:
            act.details = dict(details)
            act.last_update = s
            self._emit(kind, "update", act.onset, s, self._text(kind, details), details)

    def _expire(self, t: int) -> None:
        cfg = self.config
        for kind, act in list(self._active.items()):
            if kind == "asystole":
                continue  # ends on the next beat
            if kind == "vfib":
                recent = [s for _, s in list(self._quality)[-cfg.vf_window_blocks :]]
                if recent and all(s != _FIBRILLATION for s in recent) and (t - act.last_seen) / self.fs >= cfg.clear_s:
                    self._end(kind, t, "condition cleared")
                continue
            wait = cfg.hold_s if kind in _EVENT_KINDS else cfg.clear_s
            if (t - act.last_seen) / self.fs >= wait:
                self._end(kind, t, "condition cleared")

    def _end(self, kind: str, s: int, reason: str) -> None:
        act = self._active.pop(kind)
        self._emit(kind, "end", act.onset, max(s, act.onset), self._text(kind, act.details), act.details, reason)

    def _text(self, kind: str, details: Mapping[str, float | int | None]) -> str:
        name = ALARM_KINDS[kind].text
        hr = details.get("hr")
        return f"{name} {hr:.0f} bpm" if isinstance(hr, (int, float)) and kind != "afib" else name

    def _emit(
        self,
        kind: str,
        state: str,
        onset: int,
        s: int,
        text: str,
        details: Mapping[str, float | int | None],
        reason: str | None = None,
    ) -> None:
        self._events.append(AlarmEvent(self.stream, kind, state, onset, s, self.fs, text, dict(details), reason))
