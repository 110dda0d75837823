#!/usr/bin/env bash
# GPU check in one go, for a machine with a CUDA device and no network.
#
#   OUT=/some/folder tools/gpu_check.sh        (run from anywhere; OUT defaults to out/gpu_check)
#
# Runs the CUDA tests (pytest -m gpu) and tools/bench_model.py (the shipped model and both
# ST-GCN baselines) on CUDA and, side by side on the same machine, on the CPU; writes
# everything under $OUT:
#   env.txt            GPU, driver, torch/CUDA versions, CPU
#   pytest_gpu.txt     test log, pytest_gpu.xml (JUnit)
#   bench_cuda.txt/.json, bench_cpu.txt/.json
#   bench_serve_cuda.txt/.json   finetec-serve on CUDA (tools/bench_serve.py)
#   summary.txt        exit codes and the key figures
# Installs nothing: it uses .venv/bin/python when there is one (else python3), and
# imports this working tree through a throw-away package shim, so a stale or
# missing editable install does not matter.
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUT=${OUT:-$REPO/out/gpu_check}
mkdir -p "$OUT"
PY=python3
[ -x "$REPO/.venv/bin/python" ] && PY="$REPO/.venv/bin/python"
LIMIT=${GPU_CHECK_STEP_TIMEOUT:-240}   # seconds per step

# finetec_live, finetec_live.models and finetec_live.kernels from this tree (the
# package maps models/ and kernels/ into finetec_live, as pyproject.toml does)
SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir -p "$SHIM/finetec_live"
for f in "$REPO"/finetec_live/* "$REPO"/finetec_live/.[!.]*; do
    [ -e "$f" ] && ln -s "$f" "$SHIM/finetec_live/$(basename "$f")"
done
ln -sfn "$REPO/models" "$SHIM/finetec_live/models"
ln -sfn "$REPO/kernels" "$SHIM/finetec_live/kernels"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONSAFEPATH=1   # no cwd on sys.path: the shim, not ./finetec_live alone, is imported
export PYTHONDONTWRITEBYTECODE=1
# the real data, if this machine has a copy beside the tree or inside it
if [ -z "${FINETEC_DATA:-}" ]; then
    for d in "$REPO/../shared/data" "$REPO/shared/data"; do
        [ -d "$d" ] && export FINETEC_DATA="$d" && break
    done
fi

{
    echo "date: $(date -u +%FT%TZ)"; echo "repo: $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo no git))"
    echo "python: $PY"; echo "data: ${FINETEC_DATA:-none (synthetic windows)}"
    nvidia-smi 2>&1 || echo "nvidia-smi not available"
    lscpu 2>/dev/null | grep -E "Model name|^CPU\(s\)" || true
    timeout 120 "$PY" -c "import torch, finetec_live.models, finetec_live.kernels as k; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); \
print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None); \
print('finetec_live from', finetec_live.models.__file__)" 2>&1
} > "$OUT/env.txt"
cat "$OUT/env.txt"

echo "== pytest -m gpu"
timeout "$LIMIT" "$PY" -m pytest -m gpu tests/test_gpu.py -v -rs -p no:cacheprovider \
    --junitxml="$OUT/pytest_gpu.xml" > "$OUT/pytest_gpu.txt" 2>&1
rc_tests=$?
tail -n 25 "$OUT/pytest_gpu.txt"

echo "== bench on CUDA"
timeout "$LIMIT" "$PY" tools/bench_model.py --device cuda --json "$OUT/bench_cuda.json" \
    > "$OUT/bench_cuda.txt" 2>&1
rc_cuda=$?
grep -v " bench: " "$OUT/bench_cuda.txt" | tail -n 40

echo "== bench on CPU (same machine, 2 threads; batches 1 and 64: three models fit the step)"
timeout "$LIMIT" "$PY" tools/bench_model.py --device cpu --threads 2 --repeats 50 --batches 1 64 \
    --json "$OUT/bench_cpu.json" > "$OUT/bench_cpu.txt" 2>&1
rc_cpu=$?
grep -v " bench: " "$OUT/bench_cpu.txt" | tail -n 12

echo "== finetec-serve on CUDA (64 and 256 streams, 10 s each, and a burst of 2048)"
timeout "$LIMIT" "$PY" tools/bench_serve.py --device cuda --backends torch --streams 64 256 --seconds 10 \
    --serve-args "--max-batch 1024" --json "$OUT/bench_serve_cuda.json" \
    > "$OUT/bench_serve_cuda.txt" 2>&1
rc_serve=$?
tail -n 8 "$OUT/bench_serve_cuda.txt"

{
    echo "bench_serve cuda: exit $rc_serve"
    grep -E "streams:|burst" "$OUT/bench_serve_cuda.txt" 2>/dev/null
    echo "pytest -m gpu: exit $rc_tests ($(grep -Eo '[0-9]+ (passed|failed|skipped|error)[a-z]*' "$OUT/pytest_gpu.txt" | tr '\n' ' '))"
    echo "bench cuda: exit $rc_cuda"; echo "bench cpu: exit $rc_cpu"
    grep -E "best batch-1|ratio ours" "$OUT/bench_cuda.txt" "$OUT/bench_cpu.txt" 2>/dev/null
    [ "$rc_tests" = 124 ] || [ "$rc_cuda" = 124 ] || [ "$rc_cpu" = 124 ] && \
        echo "a step ran past ${LIMIT}s (GPU_CHECK_STEP_TIMEOUT)"
} > "$OUT/summary.txt"
echo "== summary"; cat "$OUT/summary.txt"
[ "$rc_tests" = 0 ] && [ "$rc_cuda" = 0 ] && [ "$rc_cpu" = 0 ]
