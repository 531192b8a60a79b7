#!/usr/bin/env bash
# The GPU checks in one run, for a machine with an NVIDIA GPU: the GPU tests
# (CuPy images against NumPy's, every GPU backend's labels against the CPU's),
# benchmarks/inference.py, and benchmarks/backends_agree.py (the monitor's beats,
# rhythm annotations and alarms per backend against the CPU backend's).
#
# Usage: bash benchmarks/gpu_checks.sh MITDB_DIR OUT_DIR
# MITDB_DIR needs 208 and the records of $AGREE_RECORDS; each step has its own
# time limit ($STEP_S seconds) so one hung step leaves the others' results.
set -u
DATA=${1:?folder of the mitdb records}
OUT=${2:?output folder}
STEP_S=${STEP_S:-200}
AGREE_RECORDS=${AGREE_RECORDS:-200,203,207,208,210,213,221,233}
mkdir -p "$OUT"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export ECG_MONITOR_SHARED_DATA=$(cd "$DATA/.." && pwd)
cd "$ROOT"

step() {
    local name=$1
    shift
    local start=$SECONDS
    timeout -k 10 "$STEP_S" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    echo "== $name: exit $rc, $((SECONDS - start)) s"
    tail -n "${TAIL:-12}" "$OUT/$name.log"
}

{ nvidia-smi -L; python3 -c 'import torch, json; from engine import discover; print("torch", torch.__version__); print(json.dumps(discover(), indent=1)); import cupy; from engine._backends import _cupy_stream; print("CuPy", cupy.__version__, "stream handle:", type(_cupy_stream(cupy, torch.cuda.current_stream().cuda_stream)).__name__)'; } >"$OUT/machine.log" 2>&1
cat "$OUT/machine.log"
step gpu_tests python3 -m pytest -q -rA -p no:cacheprovider -o addopts= tests/engine/test_backends.py tests/engine/test_engine.py -k "cupy or backend"
step inference python3 benchmarks/inference.py --data "$DATA" --out "$OUT" --seconds 10 --batcher-backends compiled cuda
step backends_agree python3 benchmarks/backends_agree.py --data-dir "$DATA" --records "$AGREE_RECORDS" --out "$OUT"
