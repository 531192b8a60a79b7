"""A shared engine first, the local model while it is away: :class:`FallbackClassifier`.

An analysis worker sends its beats to an ``ecg-engine`` service (one GPU shared
by many workers) and keeps a local CPU model of the same weights. When the
service does not answer within its timeout, or refuses, the batch is labelled
by the local model, so no beat waits on the service and no alarm depends on it;
the service is tried again after ``retry_s``. A service that serves other weights
than the local model's is refused (labels would depend on where they were made).

The retry clock is the only wall time here: it decides where a batch is
labelled, never what the label is (same weights on both sides; the backends give
the same labels, ``benchmarks/backends_agree.py``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from engine._errors import EngineUnavailable
from engine._types import Beat, BeatClassifier

__all__ = ["FallbackClassifier"]

log = logging.getLogger(__name__)


class FallbackClassifier:
    """``remote()`` builds the service client (it may raise); ``local`` labels what the service cannot.

    ``model_id``: the SHA-256 of the local weights; a client whose ``model_id``
    differs is refused (one that names none is accepted, with a warning).
    :attr:`batches` counts batches by where they were labelled (``remote``,
    ``local``); :attr:`failures` counts the service's failures by cause.
    """

    def __init__(
        self,
        remote: Callable[[], BeatClassifier],
        local: BeatClassifier,
        *,
        model_id: str | None = None,
        retry_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = remote
        self.local = local
        self.model_id = model_id
        self.retry_s = retry_s
        self.clock = clock
        self._remote: BeatClassifier | None = None
        self._next_try = clock()
        self.batches: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.name = f"{local.name} (service down)"

    def _close_remote(self) -> None:
        close = getattr(self._remote, "close", None)
        if callable(close):
            close()
        self._remote = None

    def _give_up(self, why: str, exc: Exception) -> None:
        self._close_remote()
        self.failures[type(exc).__name__] += 1
        self._next_try = self.clock() + self.retry_s
        self.name = f"{self.local.name} (service down)"
        log.warning("engine service %s (%s); labelling locally, trying again in %.0f s", why, exc, self.retry_s)

    def _ensure_remote(self) -> BeatClassifier | None:
        if self._remote is None and self.clock() >= self._next_try:
            try:
                remote = self._connect()
            except (EngineUnavailable, OSError) as exc:
                self._give_up("unreachable", exc)
                return None
            served = getattr(remote, "model_id", None)
            if self.model_id and served and served != self.model_id:
                close = getattr(remote, "close", None)
                if callable(close):
                    close()
                refused = EngineUnavailable(f"it serves weights {served[:12]}, the local model is {self.model_id[:12]}")
                self._give_up("refused", refused)
                return None
            if self.model_id and not served:
                log.warning("engine service does not name its weights; assuming they are the local model's")
            self._remote = remote
            self.name = f"{remote.name} (local {self.local.name} standing by)"
            log.info("labelling on the engine service %s", remote.name)
        return self._remote

    def classify(self, beats: Sequence[Beat]) -> list[str]:
        if not beats:
            return []
        remote = self._ensure_remote()
        if remote is not None:
            try:
                labels = remote.classify(beats)
            except (EngineUnavailable, OSError) as exc:
                self._give_up("failed", exc)
            else:
                self.batches["remote"] += 1
                return labels
        self.batches["local"] += 1
        return self.local.classify(beats)

    def close(self) -> None:
        self._close_remote()
