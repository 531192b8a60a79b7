"""The engine's runtime stands alone: importing any of its modules imports nothing of the monitor or the replayer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = [
    "engine",
    "engine._types",
    "engine._errors",
    "engine._batcher",
    "engine._backends",
    "engine._model",
    "engine._representation",
    "engine._classifier",
    "engine._service",
    "engine._supervisor",
]
# One interpreter imports them in turn and checks after each: a module's own imports run when it is first
# imported, either at its turn or as a dependency of an earlier one, whose check then catches them.
PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
    bad = sorted(m for m in sys.modules if m.split(".")[0] in ("monitor", "replay"))
    if bad:
        print(name, "imported", " ".join(bad))
        break
"""


def test_engine_runtime_modules_import_no_monitor_or_replay_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *RUNTIME], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
