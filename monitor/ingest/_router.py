"""Frame routing: every message to its stream, detection for all streams at once.

Every message is untrusted input. Each one is counted exactly once: accepted by
its stream (``stats.frames``, or ``stats.eos_received`` for its end-of-stream),
rejected by its stream under a reason (``stats.rejected[reason]``), held by its
stream until a rule decides (``stats.held``, at most ``restart_frames``), or
rejected before it reaches a stream (``Ingest.rejected[reason]``), so
:meth:`Ingest.unaccounted` is always 0. No exception escapes
:meth:`Ingest.on_message` or :meth:`Ingest.step`, and one stream's input never
stops another stream. Every rejection is also logged, rate-limited per
(stream, reason): the first at once, then at most one line a minute with the
count (:class:`~monitor.ingest._rejections.RejectionLog`, on the ingest's clock).

Rejection reasons (the counter keys), before a stream (``Ingest.rejected``):

======================  =====================================================
``parts``               not 1 or 2 parts, parts not bytes, or the wrong number
                        of parts for the message type
``header_size``         header over 4096 bytes
``oversize``            payload over the largest any valid header allows
``json``                header not UTF-8 JSON, or nested too deeply
``header``              a field of the wrong type (or a non-finite number)
``range``               a field out of range (``seq``, ``start``, ``fs``, ``n``,
                        ``gain`` 0, ``invalid``)
``version``             ``v`` is not 1 or 2
``stream``              a stream id that is not 1-64 of ``[A-Za-z0-9._-]``
``type``                ``type`` is neither ``data`` nor ``eos``
``dtype``               not one of ``<i2``, ``<i4``, ``<f4``, ``<f8``
``boot``                a v2 message without a valid ``boot``
``size``                payload is not ``n x channels x itemsize`` bytes
``decode_error``        an unexpected failure while decoding (a bug), counted
``eos_unknown_stream``  an end-of-stream for a stream never seen
``too_many_streams``    a new stream beyond ``max_streams``
``unsupported``         a new stream at a rate too low (or odd) to find QRS
                        complexes
``key_revoked``         (with keys) the sender's key was revoked, also on an
                        established connection
``role``                (with keys) the sender's key is a bridge's or a
                        monitor's, which may not push
``stream_not_allowed``  (with keys) the stream id is outside the sender key's
                        patterns (``ecg-keys add-client --streams``)
``unauthenticated``     (with keys) a message without a key name (``User-Id``)
======================  =====================================================

and by a stream (``stats.rejected``):

======================  =====================================================
``units``               the monitored lead's units are not V, mV or uV
``format_changed``      ``fs`` or ``channels`` differ from the stream's first frame
``reordered``           a missed frame arriving late (never inserted)
``duplicate``           a frame repeating an accepted one (an older ``seq``)
``overlap``             samples already held
``jump``                (v1) samples more than ``max_gap_s`` ahead that did not
                        turn out to be a restart
``stream_conflict``     (v1) frames of a second device under this stream id
``old_boot``            a frame or end-of-stream of a boot the stream already left
``eos_mismatch``        an end-of-stream that goes back
``after_eos``           data or a second end-of-stream after the end-of-stream
``internal_error``      a bug while processing this message (the stream fails)
``stream_failed``       a message for a stream that failed
======================  =====================================================

The rules:

* **Missing samples**: NaN and infinite values, ``invalid`` raw values, values
  beyond :data:`~monitor.ingest.MAX_ABS_MV` (``stats.out_of_range``) and gaps are NaN, counted in
  ``stats.nan_samples``; the detector holds the last value across them (never a
  beat), the quality tracker judges them (``signal lost``).
* **Lead**: chosen on a stream's first frame from ``StreamConfig.lead``'s
  preference (names, then indices as listed); a stream with none of them is
  monitored on channel 0 (``stats.lead_fallback``), never rejected;
  ``StreamProcessor.lead``/``lead_name`` show the choice.
* **Gaps**: a frame ahead of the next expected sequence number and sample, by at
  most ``max_gap_s``, is accepted; the missing samples are counted
  (``tracker.frames_missing``, ``tracker.samples_missing``) and filled with NaN.
* **Frames from the past**: ``reordered`` (a missed frame arriving late),
  ``duplicate``, ``overlap`` (samples already held): dropped, never inserted.
* **Format change** (``fs`` or ``channels`` differ from the stream's first frame):
  the frame is rejected (``format_changed``) and a technical alarm ``format
  changed`` is raised until a frame in the stream's format is accepted again or
  the stream ends. Samples are never reinterpreted at another rate: a device
  that changes its format must use a new stream id.
* **Reboot (v2)**: a frame with a ``boot`` the stream has not seen is a reboot,
  at any frame: the current segment's beats are finished as at an end of
  stream, detection and RR context start afresh, and the frame is accepted
  (``stats.restarts``, ``stats.reboots``); no duplicate window spans two boots.
  Frames of a boot the stream already left are rejected (``old_boot``); when
  ``restart_frames`` of them arrive after a reboot with frames of the current
  boot between them, two devices share the stream id (``stats.conflicts``,
  technical alarm ``stream conflict``, ended once the earlier boot has been
  silent for 20 s of the stream); when ``restart_frames`` of them arrive in a
  row, the current boot fell silent (a stray frame of another device, say)
  and the earlier boot takes the stream back as a new segment. Within one
  boot a frame more than ``max_gap_s`` ahead starts a new segment at once
  (``stats.long_gaps``); other frames that do not fit the boot's sequence (a
  sender that breaks the contract) follow the v1 rules below.
* **Device restart (v1)**: frames that do not fit the stream's sequence (an older
  sequence number that repeats no recent frame, samples already held, or more
  than ``max_gap_s`` ahead) but continue each other are held. When
  ``restart_frames`` of them arrive in a row with no frame of the current
  sequence in between, the device has restarted (or is back after a long
  outage): the current segment's beats are finished as at an end of stream,
  detection and RR context start afresh on the new sequence (beat windows never
  mix the two segments) and the held frames are accepted (``stats.restarts``).
  A v1 device that restarts within 64 frames of its start repeats sequence
  numbers and sample indices of recent frames: its frames are dropped as
  ``duplicate`` until it passes them (v2's ``boot`` removes the ambiguity).
* **Segments and device indices**: the stream's sample indices never go back:
  a new segment (reboot, restart, long gap) starts at the last sample
  received. ``StreamProcessor.segments`` (a
  :class:`~monitor.ingest._segments.SegmentTable`) maps every stream index to
  its segment (number, boot, offset) and ``StreamProcessor.device_index`` to the
  device's own index; both are equal until the first new segment.
* **Two devices on one stream id (v1)**: when such a run of frames reaches
  ``restart_frames`` frames while the current sequence keeps being accepted in
  between (at least twice), the stream has a conflict (``stats.conflicts``, a
  technical alarm ``stream conflict``): the current sequence is kept and the
  other's frames are rejected (``stream_conflict``). If the current sequence
  then falls silent while the other continues (``restart_frames`` frames in a
  row), the other takes over as a restart. Held frames that turn out to be
  neither are rejected under their own reason (``duplicate``, ``overlap``,
  ``jump``). Two devices sending identical sequence numbers and sample indices
  (and, in v2, the same boot) cannot be told apart: their frames count as
  ``duplicate``.
* **End of stream**: its ``start`` is the next sample index (the last data
  frame's ``start + n``). Accepted unless it goes back (``seq`` or ``start``
  before the next expected ones: ``eos_mismatch``); one ahead of the data
  (frames lost) is counted in ``stats.eos_early``. A v1 end-of-stream whose
  ``start`` equals the samples sent in the current segment (next sample index
  minus the segment's first device index: the "total samples" older senders
  send) is accepted too (``stats.eos_total``); for a stream that started at 0
  both readings agree. In v2 an end-of-stream of an earlier boot is
  ``old_boot``; one of a new boot (a device that rebooted and ended before
  sending data) ends the stream. Data or a second end-of-stream after it:
  ``after_eos``.
* **Clocks**: the sender's ``sent`` time is never used by ingest; the monitor's
  own clock only sets arrival times (``stats.first_arrival``/``last_arrival``),
  ``Beat.ready_at`` (latency) and the rejection log's pace, so clock jumps
  change nothing else.
* **Internal failures**: an exception inside one stream's processing (a bug)
  marks that stream failed (``stats.error``; the message is counted as
  ``internal_error``, later ones as ``stream_failed``); other streams carry on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
from numpy.typing import NDArray

from engine import Beat
from monitor.detect import DetectorBank, TechnicalAlarm
from monitor.errors import ConfigError, FrameError
from monitor.ingest._config import RejectionCounter, StreamConfig
from monitor.ingest._processor import StreamProcessor
from monitor.ingest._rejections import RejectionLog
from monitor.protocol import DataFrame, EndOfStream, decode_frame

__all__ = ["Ingest"]


class Ingest:
    """Routes raw messages to their stream and runs detection for all streams at once.

    ``on_message(parts)`` checks and queues a message; ``step()`` runs the
    detector over everything queued since the last step (one
    :class:`DetectorBank` per sampling rate, streams with equal-length input
    filtered together) and returns the beats that became ready. ``feed(parts)``
    does both for one message.

    Bad input is counted, never raised (see the module docstring for every
    rule): ``rejected`` counts messages that could not be attributed to a
    stream, by reason; per-stream rejections live in each stream's stats. A
    stream whose processing fails is marked with ``stats.error`` and stops
    accepting frames; every other stream carries on.
    """

    def __init__(
        self,
        config: StreamConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_new_stream: Callable[[StreamProcessor], None] | None = None,
        authorize: Callable[[str | None, str], str | None] | None = None,
    ) -> None:
        self.config = config or StreamConfig()
        #: (sender, stream) -> None when the sender's key may push the stream, else the refusal reason
        self.authorize = authorize
        self.clock = clock
        self.streams: dict[str, StreamProcessor] = {}
        self.rejection_log = RejectionLog(clock)
        self.rejected = RejectionCounter()
        self.rejected.listener = partial(self.rejection_log.hit, "")
        self.messages = 0
        self.banks: dict[float, DetectorBank[str]] = {}
        self._dirty: dict[str, StreamProcessor] = {}  # streams with queued input or an eos
        self._ready: list[Beat] = []  # beats found by a step that on_message forced
        self._technical: list[TechnicalAlarm] = []  # alarm onsets/ends not yet taken by the owner
        self._ended: list[StreamProcessor] = []  # streams ended since the owner last took them
        self._on_new_stream = on_new_stream

    def take_technical(self) -> list[TechnicalAlarm]:
        """The technical alarm onsets and ends raised since the last call, in the order they were raised."""
        out, self._technical = self._technical, []
        return out

    def take_ended(self) -> list[StreamProcessor]:
        """The streams whose end was processed since the last call, in the order they ended."""
        out, self._ended = self._ended, []
        return out

    def feed(self, parts: Sequence[bytes]) -> list[Beat]:
        self.on_message(parts)
        return self.step()

    def unaccounted(self) -> int:
        """Messages without a fate: always 0 (each is accepted, rejected or held exactly once)."""
        routed = sum(p.stats.accounted() for p in self.streams.values())
        return self.messages - sum(self.rejected.values()) - routed

    def on_message(self, parts: Sequence[bytes], sender: str | None = None) -> None:
        """Check and queue one message; ``sender`` is its ZAP ``User-Id`` (None on an unsecured socket)."""
        self.messages += 1
        now = self.clock()
        try:
            frame = decode_frame(parts)
        except FrameError as exc:
            self.rejected[exc.reason] += 1
            return
        except Exception:  # decode_frame raises only FrameError; should a bug slip through, count it
            self.rejected["decode_error"] += 1
            return
        if self.authorize is not None:
            refused = self.authorize(sender, frame.stream)
            if refused is not None:  # before a stream is made for it: an unauthorized id never shows up
                self.rejected[refused] += 1
                return
        proc = self.streams.get(frame.stream) or self._new_stream(frame)
        if proc is None:
            return
        proc.stats.messages += 1
        if proc.stats.error is not None:
            proc.stats.rejected["stream_failed"] += 1
            return
        before = proc.stats.accounted()
        try:
            self._dirty[proc.stream] = proc
            if isinstance(frame, EndOfStream):
                proc.on_eos(frame)
            else:
                held = proc.on_frame(frame, now)
                if held is not None:
                    if self._close_segment(proc, now):
                        proc.begin_segment(held[0].frame)
                        for item in held:
                            proc.take(item, now)
                    else:  # the stream failed while finishing its segment
                        proc.stats.rejected["stream_failed"] += len(held)
            self._dirty[proc.stream] = proc
        except FrameError as exc:
            proc.stats.rejected[exc.reason] += 1
        except Exception as exc:  # a bug in one stream's processing: confine it to that stream
            self._fail(proc, exc)
            # this message (and any frames it held) get a fate
            proc.stats.rejected["internal_error"] += max(0, before + 1 - proc.stats.accounted())

    def _new_stream(self, frame: DataFrame | EndOfStream) -> StreamProcessor | None:
        if isinstance(frame, EndOfStream):
            self.rejected["eos_unknown_stream"] += 1
            return None
        if len(self.streams) >= self.config.max_streams:
            self.rejected["too_many_streams"] += 1
            return None
        try:
            bank = self.banks.get(frame.fs)
            if bank is None:
                bank = DetectorBank[str](frame.fs, self.config.detector, capacity=64)
            proc = StreamProcessor(frame, self.config)
        except (ConfigError, FrameError) as exc:  # e.g. a rate too low to find QRS complexes
            self.rejected[exc.reason if isinstance(exc, FrameError) else "unsupported"] += 1
            return None
        except Exception:  # a rate the filters cannot be designed for
            self.rejected["unsupported"] += 1
            return None
        self.banks[frame.fs] = bank
        bank.add(proc.stream)
        sid = proc.stream
        proc.stats.rejected.listener = partial(self.rejection_log.hit, sid)
        proc.settled = lambda: bank.settled(sid) + proc.segment_origin
        proc.drain = lambda: self._drain(proc)
        self.streams[frame.stream] = proc
        if self._on_new_stream is not None:
            self._on_new_stream(proc)
        return proc

    def _drain(self, proc: StreamProcessor) -> None:
        """A stream has max_queued input: detect now (the beats wait for the next step)."""
        self._dirty[proc.stream] = proc
        self._ready = self.step()  # takes self._ready with it
        self._dirty[proc.stream] = proc

    def _close_segment(self, proc: StreamProcessor, now: float) -> bool:
        """Device restart: finish the current segment's beats as at an end of stream; False if it failed."""
        sid = proc.stream
        bank = self.banks[proc.fs]
        if proc.queued:
            peaks = bank.process({sid: proc.take_queued()})
            if sid in peaks:
                proc.add_peaks(peaks[sid])
            self._collect_failures(bank)
        if proc.stats.error is None:
            proc.add_peaks(bank.flush(sid))
            self._collect_failures(bank)
        if proc.stats.error is not None:
            return False
        self._ready.extend(proc.ready(now, final=True))
        self._take_events(proc)
        bank.remove(sid)
        bank.add(sid)
        return True

    def _take_events(self, proc: StreamProcessor) -> None:
        self._technical.extend(proc.take_technical())

    def step(self) -> list[Beat]:
        """Detect on everything queued; return the beats now ready, stream by stream."""
        out, self._ready = self._ready, []
        if not self._dirty:
            return out
        dirty = self._dirty
        self._dirty = {}
        now = self.clock()
        by_bank: dict[float, dict[str, NDArray[np.float64]]] = {}
        for sid, proc in dirty.items():
            if proc.queued and proc.stats.error is None:
                by_bank.setdefault(proc.fs, {})[sid] = proc.take_queued()
        for fs, chunks in by_bank.items():
            bank = self.banks[fs]
            try:
                peaks = bank.process(chunks)
            except Exception as exc:  # the bank confines decision failures; anything else fails its streams
                for sid in chunks:
                    self._fail(dirty[sid], exc)
                continue
            for sid, found in peaks.items():
                if found.size:
                    dirty[sid].add_peaks(found)
            self._collect_failures(bank)
        for proc in dirty.values():
            # only streams with something to finish: detected peaks waiting, an end, or alarm events
            if proc.stats.error is not None or not (proc.pending_peaks or proc.eos or proc.has_technical):
                continue
            try:
                out.extend(self._finish_step(proc, now))
            except Exception as exc:
                self._fail(proc, exc)
        return out

    def _finish_step(self, proc: StreamProcessor, now: float) -> list[Beat]:
        sid = proc.stream
        final = False
        if proc.eos and not proc.stats.ended:
            bank = self.banks[proc.fs]
            proc.add_peaks(bank.flush(sid))
            self._collect_failures(bank)
            if proc.stats.error is not None:
                return []
            bank.remove(sid)
            proc.quality.flush()
            proc.close_alarms()
            proc.stats.ended = final = True
            self._ended.append(proc)
        beats = proc.ready(now, final=final) if proc.pending_peaks else []
        if proc.has_technical:
            self._take_events(proc)
        return beats

    def _fail(self, proc: StreamProcessor, exc: Exception) -> None:
        if proc.stats.error is None:
            proc.stats.error = f"{type(exc).__name__}: {exc}"

    def _collect_failures(self, bank: DetectorBank[str]) -> None:
        for sid, exc in bank.failed.items():
            self._fail(self.streams[sid], exc)
        bank.failed.clear()

    def flush_all(self) -> list[Beat]:
        """Shutdown: end every stream still open, returning its last beats."""
        for proc in self.streams.values():
            if not proc.eos and proc.stats.error is None:
                proc.release_held()
                proc.eos = True
                self._dirty[proc.stream] = proc
        return self.step()

    def forget(self, stream: str) -> StreamProcessor | None:
        """Drop an ended (or failed) stream, so that its id can start a new stream and the
        table of streams stays bounded on a monitor that runs for months."""
        proc = self.streams.get(stream)
        if proc is None or not (proc.stats.ended or proc.stats.error is not None):
            return None
        del self.streams[stream]
        self.rejection_log.forget(stream)
        self._dirty.pop(stream, None)
        bank = self.banks.get(proc.fs)
        if bank is not None and proc.stats.error is not None:
            with contextlib.suppress(KeyError):  # already out of the detector bank
                bank.remove(stream)
        return proc

    def all_ended(self, expected: set[str]) -> bool:
        return all(s in self.streams and self.streams[s].stats.ended for s in expected)
