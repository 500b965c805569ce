#!/usr/bin/env bash
# Every GPU check of the project in one run (< 8 minutes on one GPU; ~4.5 on an H200), figures written to files.
#
#   bash benchmarks/gpu_check.sh            # from the repository root, on a machine with a CUDA GPU
#
# Writes into $OUT (if set) or benchmarks/gpu_results/:
#   env.txt              nvidia-smi, torch/CUDA versions, ecgfounder env
#   tests.txt            the tests that need a GPU (the CUDA runner) and the worker processes' start-up
#   inference.txt/.json  parity on the device (published Net1D vs golden, each path vs the published
#                        fp32 forward) and throughput of fp32/torch and bf16/torch at batch 1, 32, 256,
#                        matmul limits (fp32/bf16/int8) measured in the same run, and what auto picks
#   preprocess.txt/.json the published chain on the device (torch chain, batch 256) against the
#                        published per-record code on one CPU core, max |Δ| beside each speed
#   predict.txt/.json    predict end to end over 2,000 WFDB records on the device (auto path, batch
#                        256, the default worker processes preparing) against model-only throughput;
#                        peak memory
#   predict_pipe.txt/.json   the same with the windows back through the pool's pipe (the fallback
#                        where /dev/shm is missing or full) instead of /dev/shm files
#   gpu_parts.txt/.json  a runner's time at batch 256 taken apart: host→device copy (pageable, pinned),
#                        forward on the device (cuDNN default and benchmark), CUDA graph, device→host
#   summary.txt          exit status and seconds of each step
#   all.txt              the text files above, one after another
# Each step has its own time limit, so one stuck step cannot eat the others' time.  Nothing here
# needs network access; the Python environment must already hold the package's dependencies
# (torch with CUDA, numpy, scipy, wfdb; numba/onnxruntime/openvino optional).
set -u
cd "$(dirname "$0")/.."
RES="${OUT:-benchmarks/gpu_results}"
mkdir -p "$RES"
PY="${PYTHON:-$(command -v python || command -v python3)}"
DEVICE="${DEVICE:-cuda}"  # DEVICE=cpu rehearses the script on a machine without a GPU (slow: batch 256 on a CPU)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export ECGFOUNDER_CACHE="${ECGFOUNDER_CACHE:-$RES/cache}"
RECORDS="$(mktemp -d)"  # the 2,000 WFDB records, written once for both predict steps
trap 'rm -rf "$RECORDS"' EXIT
: > "$RES/summary.txt"

step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$RES/$name.txt" 2>&1
    local rc=$?
    echo "$name rc=$rc seconds=$((SECONDS - t0))" | tee -a "$RES/summary.txt"
}

{
    nvidia-smi || true
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    "$PY" -m ecgfounder env || true
} > "$RES/env.txt" 2>&1

# 0. the tests that need a GPU (skipped elsewhere) and the worker start-up on this Python (~30 s)
step tests 120 "$PY" -m pytest -q -p no:cacheprovider -p no:xdist -o addopts="" -rs \
    tests/runtime/test_runtime.py tests/prediction/test_workers.py
# 1. parity on the device + every GPU path at batch 1/32/256 + matmul limits + auto (66 s on an H200)
step inference 200 "$PY" benchmarks/bench_inference.py --device "$DEVICE" --batches 1,32,256 \
    --seconds 2 --rounds 2 --json "$RES/inference.json"
# 2. preprocessing on the device (torch chain) vs the published per-record code on one core (30 s)
step preprocess 90 "$PY" benchmarks/bench_preprocess.py --torch --device "$DEVICE" --batch 256 \
    --seconds 2 --rounds 2 --json "$RES/preprocess.json"
# 3. predict end to end over 2,000 WFDB records on the device (50 s incl. writing the records)
step predict 200 "$PY" benchmarks/bench_predict.py --n 2000 --device "$DEVICE" --batch 256 --threads 4 \
    --model-seconds 5 --rounds 2 --dir "$RECORDS" --json "$RES/predict.json"
# 4. the same with the windows coming back through the pool's pipe instead of /dev/shm files (the
#    engine's fallback; 25 s: the records and the path's cache are kept)
step predict_pipe 120 "$PY" benchmarks/bench_predict.py --n 2000 --device "$DEVICE" --batch 256 --threads 4 \
    --windows-via pipe --model-seconds 5 --rounds 2 --dir "$RECORDS" --json "$RES/predict_pipe.json"
# 5. where a runner's time goes at batch 256: copies, forward (cuDNN default / benchmark), CUDA graph (~30 s)
step gpu_parts 90 "$PY" benchmarks/bench_gpu_parts.py --device "$DEVICE" --batch 256 --json "$RES/gpu_parts.json"
echo "total seconds=$SECONDS" | tee -a "$RES/summary.txt"
# every text file above in one, for a reader (or a tool) that takes a single file
for f in summary env tests inference preprocess predict predict_pipe gpu_parts; do
    [ -f "$RES/$f.txt" ] && { echo "===== $f.txt"; cat "$RES/$f.txt"; }
done > "$RES/all.txt"
