"""Moved to :mod:`engine._supervisor`; kept so that ``from engine._worker import EngineWorker`` still works."""

from engine._supervisor import EngineWorker, WorkerResult

__all__ = ["EngineWorker", "WorkerResult"]
