#!/usr/bin/env bash
# One session on a lent CUDA machine, from a source checkout with no install (python3 there has torch with
# CUDA, onnx and a CPU onnxruntime; the few packages it lacks come as wheels in .whl/). Each step has its own
# time limit and the session goes on past a failed step; everything lands in OUT (default /tmp/gpu-session).
#
#   bash bench/gpu_session.sh [OUT]
#
# 1. gpu_check on torch: ResNet-50 and MobileNet-v2 at batch 1 and 8, fp32/fp16/bf16 (both clocks, NVML memory
#    and energy, parity with fp32 eager); 2. the tests marked gpu; 3. torch-compile on one cell; 4. a paper-style
#    batch sweep (batch 1 and 64) of six models in fp32 and fp16; 5. the report of the sweep.
set -u
OUT=${1:-/tmp/gpu-session}
mkdir -p "$OUT"
RESULTS=/tmp/gpu-results
export PYTHONUNBUFFERED=1 HARNESS_CACHE_DIR=/tmp/harness-cache HF_HUB_OFFLINE=1
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
step() {  # step SECONDS NAME COMMAND...: run it under a limit (SIGINT first, as Ctrl-C), say how it ended
    local limit=$1 name=$2; shift 2
    local start=$SECONDS
    echo; echo "=== $name (limit ${limit}s) $(date -u +%T)"
    timeout -s INT -k 15 "$limit" "$@"
    echo "=== $name: exit $? after $((SECONDS - start))s"
}

step 20 environment bash -c 'nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
    --format=csv; python3 -c "import sys, torch, onnxruntime; print(sys.version.split()[0], torch.__version__, \
    torch.version.cuda, torch.cuda.get_device_name(0), onnxruntime.__version__)"; python3 -m harness --version'
step 200 gpu-check-torch python3 bench/gpu_check.py --runtimes torch --models resnet50,mobilenet_v2 \
    --batch-sizes 1,8 --out "$RESULTS"
step 110 tests-marked-gpu python3 -m pytest -m gpu tests/test_gpu.py -q -p no:cacheprovider
step 90 torch-compile python3 -m harness bench --runtime torch-compile --models mobilenet_v2 --batch-sizes 8 \
    --device cuda --precision fp16 --out "$RESULTS" --run-id compile
step 130 paper-sweep python3 -m harness bench --runtime torch --device cuda --precision fp32,fp16 \
    --models alexnet,vgg16,resnet50,inception_v3,densenet121,mobilenet_v2 --batch-sizes 1,64 --energy off \
    --order interleaved --out "$RESULTS" --run-id sweep --show time,memory
step 20 report python3 -m harness report "$RESULTS/sweep" --quiet
tar czf "$OUT/results.tgz" -C "$(dirname $RESULTS)" "$(basename $RESULTS)" 2>/dev/null
cp "$RESULTS"/gpu-check-*-bench/gpu-check.json "$OUT/" 2>/dev/null
echo "=== done after ${SECONDS}s"
