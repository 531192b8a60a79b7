"""Synthetic ECG for the tests: moved to :mod:`monitor.testing`, re-exported here."""

from monitor.testing import ecg, write_record

__all__ = ["ecg", "write_record"]
