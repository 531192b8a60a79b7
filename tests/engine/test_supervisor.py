"""The engine supervisor: back-off and retry on a fake clock, with classifiers that fail, miscount or die."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest
import zmq

from engine import Beat, BeatClassifier, EngineResult, EngineSupervisor


def beat(stream: str = "a", sample: int = 0) -> Beat:
    return Beat(stream, sample, 360.0, None, None, None, None, np.zeros(4, np.float32), 0, ready_at=0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """Answers each call with the next step: a label list length ('ok'), an exception, a miscount, or SystemExit."""

    name = "scripted"

    def __init__(self, steps: Sequence[str]) -> None:
        self.steps = list(steps)
        self.calls = 0
        self.closed = False

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        self.calls += 1
        step = self.steps.pop(0) if self.steps else "ok"
        if step == "fail":
            raise RuntimeError("engine down")
        if step == "miscount":
            return ["N"] * (len(beats) + 1)
        if step == "die":
            raise SystemExit  # ends the thread quietly, like a thread killed from outside
        return ["V"] * len(beats)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def inline(clock: Clock) -> Iterator[tuple[EngineSupervisor, Scripted]]:
    clf = Scripted(["fail", "fail", "ok"])
    sup = EngineSupervisor(clf, clock=clock, threaded=False)
    yield sup, clf
    sup.close()


def test_inline_batches_are_labelled_at_once(clock: Clock) -> None:
    sup = EngineSupervisor(Scripted([]), clock=clock, threaded=False)
    (result,) = sup.submit([beat(), beat(sample=5)])
    assert result.labels == ["V", "V"] and result.failure is None and result.seconds >= 0
    assert sup.wake is None and sup.ready() and not sup.down and sup.collect() == [] and sup.transitions() == []
    assert sup.name == "scripted"
    sup.close()


def test_a_failure_backs_off_one_second_then_doubles_and_recovers(
    inline: tuple[EngineSupervisor, Scripted], clock: Clock
) -> None:
    sup, clf = inline
    (r,) = sup.submit([beat("a"), beat("b")])
    assert r.labels == ["Q", "Q"] and r.failure == "RuntimeError: engine down" and r.seconds >= 0
    assert sup.down and sup.problem == "RuntimeError: engine down" and sup.errors == 1
    assert sup.transitions() == [("down", "RuntimeError: engine down")]
    clock.now += 0.9  # backing off: answered Q at once, not run, no failure
    waiting = [beat()]
    assert sup.submit(waiting) == [EngineResult(waiting, ["Q"], 0.0, None)]
    assert clf.calls == 1
    clock.now += 0.1  # the retry is due: it fails again, the back-off doubles
    (r,) = sup.submit([beat()])
    assert r.failure is not None and clf.calls == 2 and sup.errors == 2 and sup.transitions() == []
    clock.now += 1.9
    assert sup.submit([beat()])[0].failure is None and clf.calls == 2
    clock.now += 0.1
    (r,) = sup.submit([beat()])
    assert r.labels == ["V"] and r.failure is None and clf.calls == 3
    assert not sup.down and sup.problem is None and sup.errors == 2
    assert sup.transitions() == [("up", None)]


def test_the_back_off_stops_doubling_at_its_limit(clock: Clock) -> None:
    clf = Scripted(["fail"] * 10)
    sup = EngineSupervisor(clf, clock=clock, threaded=False, max_backoff_s=4.0)
    runs = []  # clock times at which the engine was actually tried
    for _ in range(40):
        before = clf.calls
        sup.submit([beat()])
        if clf.calls > before:
            runs.append(clock.now)
        clock.now += 0.5
    assert np.diff(runs).tolist()[:6] == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    sup.close()


def test_a_wrong_label_count_is_a_failure(clock: Clock) -> None:
    sup = EngineSupervisor(Scripted(["miscount"]), clock=clock, threaded=False)
    (r,) = sup.submit([beat(), beat()])
    assert r.labels == ["Q", "Q"] and r.failure == "RuntimeError: the engine returned 3 labels for 2 beats"
    assert sup.transitions() == [("down", r.failure)]
    sup.close()


def test_a_factory_rebuilds_the_engine_at_the_retry_and_its_failure_counts(clock: Clock) -> None:
    first = Scripted(["fail"])
    built: list[Scripted] = []
    broken = [True]

    def factory() -> BeatClassifier:
        if broken[0]:
            broken[0] = False
            raise OSError("engine host unreachable")
        built.append(Scripted([]))
        return built[-1]

    sup = EngineSupervisor(first, factory=factory, clock=clock, threaded=False)
    sup.submit([beat()])
    clock.now += 1.0
    (r,) = sup.submit([beat()])  # the old one is closed, the factory fails: a failure, back-off 2 s
    assert first.closed and r.failure == "OSError: engine host unreachable" and r.seconds == 0.0
    assert sup.errors == 2 and sup.down and sup.classifier is first
    clock.now += 2.0
    (r,) = sup.submit([beat()])
    assert r.labels == ["V"] and sup.classifier is built[0] and not sup.down
    assert sup.transitions() == [("down", "RuntimeError: engine down"), ("up", None)]
    sup.close()


def test_threaded_batches_come_back_on_the_wake_socket(clock: Clock) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sup = EngineSupervisor(Scripted(["ok", "fail"]), clock=clock, context=ctx)
    try:
        assert sup.wake is not None
        assert sup.submit([beat(), beat()]) == [] and sup.busy and not sup.ready()
        with pytest.raises(RuntimeError, match="busy"):
            sup.submit([beat()])
        assert sup.wake.poll(5000, zmq.POLLIN)
        (r,) = sup.collect()
        assert r.labels == ["V", "V"] and r.failure is None and not sup.busy
        assert sup.submit([beat()]) == []
        (r,) = sup.collect(wait=True)
        assert r.labels == ["Q"] and r.failure == "RuntimeError: engine down" and sup.down
        waiting = [beat()]
        assert sup.submit(waiting) == [EngineResult(waiting, ["Q"], 0.0, None)] and not sup.busy
        clock.now += 1.0
        assert sup.submit([beat()]) == []
        assert sup.collect(wait=True)[0].labels == ["V"] and not sup.down
        assert sup.transitions() == [("down", "RuntimeError: engine down"), ("up", None)]
    finally:
        sup.close()
        ctx.destroy(linger=0)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread dies on purpose
def test_a_dead_thread_is_replaced_and_its_batch_comes_back_q(clock: Clock) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    clf = Scripted(["die", "ok"])
    sup = EngineSupervisor(clf, clock=clock, context=ctx)
    try:
        wake = sup.wake
        batch = [beat("a"), beat("b")]
        assert sup.submit(batch) == []
        (r,) = sup.collect(wait=True)
        assert r.beats == batch and r.labels == ["Q", "Q"] and r.seconds == 0.0
        assert r.failure == "RuntimeError: the engine thread died" and sup.down and sup.errors == 1
        assert sup.wake is wake and not sup.busy  # the owner's poller keeps working
        clock.now += 1.0
        assert sup.submit([beat()]) == []
        assert wake is not None and wake.poll(5000, zmq.POLLIN)
        assert sup.collect()[0].labels == ["V"] and not sup.down
    finally:
        sup.close()
        ctx.destroy(linger=0)
