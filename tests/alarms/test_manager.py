"""The alarm manager: the one table of active alarms, the monitor's technical alarms and closing a stream."""

from __future__ import annotations

from monitor.alarms import AlarmEvent, AlarmManager, StreamAlarms
from monitor.detect import TechnicalAlarm

FS = 250.0


class Recorder:
    """Every transition and rhythm change the manager hands on."""

    def __init__(self) -> None:
        self.events: list[AlarmEvent] = []
        self.aux: list[tuple[int, str]] = []
        self.technical: list[TechnicalAlarm] = []

    def on_alarm(self, event: AlarmEvent) -> None:
        self.events.append(event)

    def on_rhythm(self, stream: str, fs: float, sample: int, aux: str) -> None:
        self.aux.append((sample, aux))

    def on_technical(self, alarm: TechnicalAlarm, fs: float) -> None:
        self.technical.append(alarm)


def manager() -> tuple[AlarmManager, Recorder, StreamAlarms]:
    rec = Recorder()
    return AlarmManager(rec, silence_s=5.0, shed_clear_s=10.0), rec, StreamAlarms("bed-1", FS)


def vtach(state: str, sample: int) -> AlarmEvent:
    return AlarmEvent("bed-1", "vtach", state, 1000, sample, FS, "VT")


def test_end_all_ends_clinical_and_technical_alarms_with_the_reason() -> None:
    alarms_manager, rec, alarms = manager()
    alarms_manager.emit(alarms, [vtach("onset", 1200)])
    alarms_manager.check_silence(alarms, last_arrival=0.0, now=6.0, sample=1500)
    alarms_manager.on_shed(alarms, 1400, now=5.0)
    alarms_manager.engine_failed(alarms, 1450)
    alarms_manager.technical(alarms, TechnicalAlarm("bed-1", "leads off", 1300))
    assert set(alarms.active) == {"vtach", "signal_lost", "beats_shed", "engine_failed", "leads_off"}

    alarms_manager.end_all(alarms, 1600, "monitor stopped")
    assert not alarms.active
    ends = {e.kind: e for e in rec.events if e.state == "end"}
    assert set(ends) == {"vtach", "signal_lost", "beats_shed", "engine_failed", "leads_off"}
    assert {e.end_reason for e in ends.values()} == {"monitor stopped"}
    assert all(e.sample == 1600 for e in ends.values())
    assert rec.aux[-1] == (1600, "(N")  # the rhythm annotation goes back to normal
    alarms_manager.end_all(alarms, 1700, "monitor stopped")  # nothing left: nothing more
    assert len([e for e in rec.events if e.state == "end"]) == 5
    assert alarms_manager.counts["vtach"] == 1  # onsets only


def test_an_end_never_goes_before_its_alarm() -> None:
    alarms_manager, rec, alarms = manager()
    alarms_manager.emit(alarms, [vtach("onset", 1200)])
    alarms_manager.end_all(alarms, 900, "device silent for 600 s")
    assert rec.events[-1].sample == 1200 and rec.events[-1].end_reason == "device silent for 600 s"


def test_technical_ends_carry_the_close_reason_while_a_stream_is_closed() -> None:
    alarms_manager, rec, alarms = manager()
    alarms_manager.technical(alarms, TechnicalAlarm("bed-1", "noisy signal", 100))
    alarms_manager.technical(alarms, TechnicalAlarm("bed-1", "noisy signal", 100, 400))
    assert rec.events[-1].end_reason == "condition cleared"
    alarms_manager.technical(alarms, TechnicalAlarm("bed-1", "noisy signal", 500))
    alarms.end_reason = "device silent for 600 s"
    alarms_manager.technical(alarms, TechnicalAlarm("bed-1", "noisy signal", 500, 900))
    assert rec.events[-1].state == "end" and rec.events[-1].end_reason == "device silent for 600 s"
    assert not alarms.active
    # a whole episode seen at once is still an onset and an end that cleared
    alarms_manager.technical(alarms, TechnicalAlarm("bed-1", "leads off", 950, 990))
    assert [(e.kind, e.state, e.end_reason) for e in rec.events[-2:]] == [
        ("leads_off", "onset", None),
        ("leads_off", "end", "condition cleared"),
    ]


def test_signal_lost_comes_and_goes_with_the_data() -> None:
    alarms_manager, rec, alarms = manager()
    alarms_manager.check_silence(alarms, last_arrival=10.0, now=14.0, sample=100)
    assert not alarms.active
    alarms_manager.check_silence(alarms, last_arrival=10.0, now=15.0, sample=100)
    assert "signal_lost" in alarms.active
    alarms_manager.check_silence(alarms, last_arrival=20.0, now=20.5, sample=200)
    assert not alarms.active and rec.events[-1].end_reason == "data resumed"
