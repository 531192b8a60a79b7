"""Rhythm logic: per-stream alarm state machines over beat labels, RR intervals and signal quality.

A :class:`RhythmAnalyzer` runs on the stream's own sample clock: it takes
labelled beats (:meth:`~RhythmAnalyzer.on_beat`), the signal-quality verdict of
each judged block (:meth:`~RhythmAnalyzer.on_quality`), and is told how far the
stream is known to be complete (:meth:`~RhythmAnalyzer.advance`: every beat
before that sample and every block ending by it has been delivered). It
evaluates every alarm condition at each beat, at each block's end and at each
second of signal, in sample order, and returns :class:`AlarmEvent` onsets,
updates and ends plus one :class:`Vitals` record per second.

Every decision is a function of the samples alone. Inputs are evaluated in
sample order whatever order they were delivered in (a block at its end, before
the second's tick and the beats at that sample; a beat after the ticks up to
its sample), so the alarms do not depend on when labels come back nor on how
far each :meth:`~RhythmAnalyzer.advance` goes: ``advance(h1)`` then
``advance(h2)`` gives what ``advance(h2)`` alone gives. An onset's decision
sample (``AlarmEvent.sample``) is the latest sample at which an input evaluated
so far was complete: a beat's ready sample (its window and next R peak, see
:mod:`monitor.detect`), a block's end, a tick; never the sample that happened
to have arrived when the logic ran. Hold, clear and update times are counted in
samples. Nothing in it reads a wall clock, so tests drive it with synthetic
beats and the same input always gives the same alarms.

Thresholds are in :class:`RhythmConfig` (adult defaults after the arrhythmia
alarms of commercial bedside monitors and the PhysioNet/CinC 2015 alarm
definitions). Each group of alarms is documented with its code:

* here, the absence of beats:

  ======================  ========  ==========================================================
  alarm                   priority  condition
  ======================  ========  ==========================================================
  ``asystole``            high      no beat for ``asystole_s`` while the signal is usable (a
                                    lost or flat signal is a technical alarm instead), not
                                    fibrillation-like, and without QRS-like activity
  ``pause``               medium    no beat for ``pause_s`` (shorter than asystole), on the
                                    same signal
  ======================  ========  ==========================================================

  Without QRS-like activity: the quality blocks judged in the gap say ``no
  QRS`` (see :mod:`monitor.alarms._signal`), those ending at least
  ``QUIET_AFTER_BEAT_S`` after the last beat (their 1.5-second window is past
  its QRS and T wave) and within ``QUIET_RECENT_S`` of the decision (so an
  artefact delays asystole, but only until the last 4 s of signal have been
  quiet), and before the next beat's QRS. Beats the detector missed, or an
  electrode-motion step that hides them, do not make asystole.

* :mod:`monitor.alarms._signal`: ``vfib``, from the signal-quality blocks;
* :mod:`monitor.alarms._ventricular`: ``vtach``, ``vrun``, ``couplet``,
  ``bigeminy``, ``trigeminy``, ``pvc_frequent``;
* :mod:`monitor.alarms._supraventricular`: ``afib``, ``svt``;
* :mod:`monitor.alarms._rates`: ``brady``, ``brady_extreme``, ``tachy``,
  ``tachy_extreme``, on the heart rate of :mod:`monitor.alarms._heart_rate`;
* :mod:`monitor.alarms._states`: onsets, updates, ends, and which alarm
  supersedes which;
* :mod:`monitor.alarms._realarm`: the re-alarm hold, and what is worse than
  an episode that ended.

At each beat the rules run in this order: asystole ends, pause, ventricular
runs, SVT, bigeminy/trigeminy, AF, frequent PVCs. At each block's end: VF, then
the alarms whose condition has cleared end. At each second: asystole, pause,
heart rate and rate alarms, then the alarms whose condition has cleared end,
and the second's :class:`Vitals` is recorded.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from engine import BeatShape
from monitor.alarms._beats import Beat
from monitor.alarms._events import AlarmEvent, Vitals
from monitor.alarms._heart_rate import heart_rate
from monitor.alarms._rates import RateAlarms
from monitor.alarms._settings import RhythmConfig
from monitor.alarms._signal import SignalBlocks, check_vf
from monitor.alarms._states import AlarmStates
from monitor.alarms._supraventricular import AfDetector, check_svt
from monitor.alarms._ventricular import PvcCounter, check_patterns, check_ventricular_runs
from monitor.vocabulary import ALARM_KINDS

__all__ = ["RhythmAnalyzer"]

_T = TypeVar("_T")

#: The quality blocks that must show no QRS-like activity for asystole or pause: those ending this long after the
#: last beat (a block judges its last 1.5 s), within this long of the decision (the blocks then cover the last 4 s,
#: ``asystole_s``), and this long before the beat that ends the gap.
QUIET_AFTER_BEAT_S = 2.1
QUIET_RECENT_S = 2.5
QUIET_BEFORE_BEAT_S = 0.1


def _insert(queue: deque[_T], item: _T, sample: int, key: Callable[[_T], int]) -> None:
    """Put ``item`` (at ``sample``) in ``queue`` kept in sample order, after the items at the same sample."""
    if not queue or key(queue[-1]) <= sample:
        queue.append(item)
    else:
        queue.insert(bisect.bisect_right([key(q) for q in queue], sample), item)


class RhythmAnalyzer:
    """Alarm state machines of one stream; see the module docstring."""

    def __init__(self, stream: str, fs: float, config: RhythmConfig | None = None, origin: int = 0) -> None:
        self.stream = stream
        self.fs = fs
        self.config = config or RhythmConfig()
        self.origin = origin
        self._tick = max(1, round(fs))
        self._quiet_after = round(QUIET_AFTER_BEAT_S * fs)
        self._quiet_recent = round(QUIET_RECENT_S * fs)
        self._quiet_before = round(QUIET_BEFORE_BEAT_S * fs)
        self._next_tick = origin + self._tick
        self._pending: deque[Beat] = deque()  # delivered, not yet processed, in sample order
        self._pending_blocks: deque[tuple[int, str]] = deque()  # (block end, state), not yet processed, in order
        self._beats: deque[Beat] = deque(maxlen=max(64, 2 * self.config.af_window + 8))
        self._horizon = origin
        self._pvcs = PvcCounter(fs)
        self._blocks = SignalBlocks(self._tick)
        self._af = AfDetector()
        self._rates = RateAlarms()
        self._alarms = AlarmStates(stream, fs, self.config, ready=origin)
        self._vitals: list[Vitals] = []
        #: the heart rate at the latest second (None before there is one)
        self.hr: float | None = None

    # ------------------------------------------------------------ input
    def on_beat(self, sample: int, label: str, ready: int | None = None, shape: BeatShape | None = None) -> None:
        """A labelled beat (``ready``: the sample at which it was ready from the samples alone, default its own;
        ``shape``: its morphology against the stream's dominant beat, when measured).

        Labels may come back in any order (an alarm stream's newer beats are labelled first); beats are
        evaluated in sample order, up to the horizon given to :meth:`advance`."""
        beat = Beat(sample, label, sample if ready is None else max(sample, ready), shape)
        _insert(self._pending, beat, sample, lambda b: b.sample)

    def on_quality(self, block_end: int, state: str) -> None:
        """The verdict of the signal block ending at ``block_end``; evaluated at that sample by :meth:`advance`."""
        _insert(self._pending_blocks, (block_end, state), block_end, lambda b: b[0])

    def advance(self, horizon: int) -> tuple[list[AlarmEvent], list[Vitals]]:
        """Every beat before ``horizon`` and every block ending by it has been delivered: evaluate up to there."""
        beats, blocks = self._pending, self._pending_blocks
        while True:
            tick = self._next_tick if self._next_tick <= horizon else None
            block = blocks[0][0] if blocks and blocks[0][0] <= horizon else None
            beat = beats[0].sample if beats and beats[0].sample < horizon else None
            # at one sample: the block ending there, then the tick, then the beat
            if block is not None and (tick is None or block <= tick) and (beat is None or block <= beat):
                self._on_block(*blocks.popleft())
            elif tick is not None and (beat is None or tick <= beat):
                self._on_tick(tick)
                self._next_tick += self._tick
            elif beat is not None:
                self._on_beat(beats.popleft())
            else:
                break
        self._horizon = max(self._horizon, horizon)
        vitals, self._vitals = self._vitals, []
        return self._alarms.take(), vitals

    def finish(self, sample: int, reason: str = "stream ended") -> list[AlarmEvent]:
        """End every active alarm (stream end or shutdown)."""
        for kind in self._alarms.kinds:
            self._alarms.end(kind, sample, reason)
        return self._alarms.take()

    @property
    def pending(self) -> int:
        """Beats delivered but not yet evaluated."""
        return len(self._pending)

    @property
    def active(self) -> tuple[str, ...]:
        """The active alarms, in the order they started."""
        return self._alarms.kinds

    # ------------------------------------------------------------ beats
    def _on_beat(self, beat: Beat) -> None:
        alarms = self._alarms
        alarms.ready = max(alarms.ready, beat.ready)
        prev = self._beats[-1] if self._beats else None
        self._beats.append(beat)
        s = beat.sample
        was_asystole = "asystole" in alarms
        if was_asystole:
            alarms.end("asystole", s, "beats resumed")
        self._pvcs.on_beat(beat)
        if prev is not None and (s - prev.sample) / self.fs >= self.config.pause_s and not was_asystole:
            gap = (s - prev.sample) / self.fs
            if self._blocks.usable_between(prev.sample, s) and self._no_qrs(prev.sample, s - self._quiet_before):
                self._pause(prev.sample, s, gap, round(gap, 2))
        check_ventricular_runs(alarms, self._beats, s)
        check_svt(alarms, self._beats, s)
        check_patterns(alarms, self._beats, s)
        self._af.check(alarms, self._beats, s)
        self._pvcs.check(alarms, s)

    def _pause(self, last: int, s: int, gap: float, reported: float) -> None:
        """No beat from ``last`` to ``s`` (``gap`` seconds; ``reported``: rounded for the details)."""
        text = f"{ALARM_KINDS['pause'].text} {gap:.1f} s"
        self._alarms.sustain("pause", last, s, {"pause_s": reported}, text)

    def _no_qrs(self, last: int, t: int) -> bool:
        """The blocks judged after the beat at ``last`` and up to ``t`` show no QRS-like activity (see the module
        docstring)."""
        return self._blocks.quiet_between(max(last + self._quiet_after, t - self._quiet_recent), t)

    # ------------------------------------------------------------ time
    def _on_block(self, block_end: int, state: str) -> None:
        self._alarms.ready = max(self._alarms.ready, block_end)
        self._blocks.add(block_end, state)
        check_vf(self._alarms, self._blocks, block_end)
        self._expire(block_end)

    def _on_tick(self, t: int) -> None:
        cfg = self.config
        alarms = self._alarms
        alarms.ready = max(alarms.ready, t)
        last = self._beats[-1].sample if self._beats else None
        since = (t - (last if last is not None else self.origin)) / self.fs
        usable = last is not None and self._blocks.usable_between(last, t) and self._no_qrs(last, t)
        # asystole: no beat while the signal is usable, not fibrillation-like and shows nothing QRS-like (only once
        # a beat has been seen)
        if last is not None and since >= cfg.asystole_s and usable and "vfib" not in alarms:
            alarms.sustain("asystole", last, t, {"since_s": round(since, 1)}, ALARM_KINDS["asystole"].text)
        if last is not None and since >= cfg.pause_s and "asystole" not in alarms and usable:
            self._pause(last, t, since, round(since, 1))
        self.hr = hr = heart_rate(
            [b.sample for b in self._beats],
            t,
            self.fs,
            window_s=cfg.hr_window_s,
            max_intervals=cfg.hr_max_beats,
            asystole_s=cfg.asystole_s,
            since=self._blocks.unmeasurable_until,
        )
        self._rates.check(alarms, t, hr)
        self._pvcs.forget_before(t)
        self._expire(t)
        pvc_per_min = float(len(self._pvcs))
        self._vitals.append(Vitals(self.stream, t, self.fs, hr, pvc_per_min, self._blocks.latest, self.active))

    def _expire(self, t: int) -> None:
        vf_quiet = "vfib" in self._alarms and self._blocks.vf_quiet(self.config.vf_window_blocks)
        self._alarms.expire(t, vf_quiet)
