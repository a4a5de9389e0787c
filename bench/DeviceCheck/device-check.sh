#!/usr/bin/env bash
# The device check of issue 17, as one script (about 6-8 minutes on an H100): run it in the repository root of the
# GPU machine, with the bundle that bench/DeviceCheck/prepare-bundle.sh made carried as out/device-check:
#
#   bash bench/DeviceCheck/device-check.sh                 # CUDA: everything below
#   bash bench/DeviceCheck/device-check.sh --device cpu --libtorch <folder> --skip-shim-build --skip-bench
#                                                          # the CPU rehearsal (this runner, this golden check)
#
#  1. the machine: nvidia-smi, the Python torch's version and folder;
#  2. LibTorchSharp (TorchSharp v0.107.0's src/Native, from the bundle) built with CMake/ninja against that torch
#     (build/native/CMakeLists.txt) and put next to the runner;
#  3. the runner's device list (Get-SDDevice's view), loading libtorch from the torch folder (--libtorch: the
#     engine's LibTorchFolder, as a module built with build.ps1 -LibTorch does; LD_LIBRARY_PATH only as a fallback),
#     with the engine's GPU memory reading (the NVIDIA driver API) and a 1 GiB allocation probe; then PyTorch's
#     torch.cuda.mem_get_info() of the same GPU, to compare;
#  4. golden parity of the six pipeline cases on the device in float32 (golden tolerances, image within 2 levels),
#     then float16 (image against the float32 one, within twice diffusers' own float16 loss, which
#     diffusers_golden.py measures on the same device just before);
#  5. the bench: UNet step and VAE decode at 512², 768² and 1024² (with the allocator against the engine's memory
#     estimate), a whole 768² 50-step DDIM image in float16;
#  6. the same with diffusers 0.29.2 (from the bundle) on the same GPU, and the ratio;
#  peak GPU memory of 5 and 6 sampled with nvidia-smi. Results: JSON and logs in $OUT (or out/device-check/results),
#  summary.txt last. Each step has its own time limit; a failing step is reported and the next one runs.
set -uo pipefail

device=cuda
libtorch=""
skip_shim=0
skip_bench=0
steps=50
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --libtorch) libtorch="$2"; shift 2 ;;
        --skip-shim-build) skip_shim=1; shift ;;
        --skip-bench) skip_bench=1; shift ;;
        --steps) steps="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bundle="$root/out/device-check"
results="${OUT:-$bundle/results}"
work="${DEVICE_CHECK_WORK:-/tmp/sd-device-check}"
step_timeout="${STEP_TIMEOUT:-240}" # seconds per runner step (a loaded CPU rehearsal needs more)
python="${PYTHON:-python3}"          # the Python with torch (the CPU rehearsal: the reference stack's /usr/bin/python3)
mkdir -p "$results" "$work"
log() { echo "==> [$(date -u +%H:%M:%S)] $*" | tee -a "$results/summary.txt" >&2; }
started=$(date +%s)

for piece in runner golden torchsharp-native diffusers transformers; do
    if [ -f "$bundle/$piece.tar.xz" ]; then tar -C "$work" -xJf "$bundle/$piece.tar.xz"; else log "missing $bundle/$piece.tar.xz (run prepare-bundle.sh)"; fi
done
runner="$work/runner/PSStableDiffusion.DeviceCheck"
golden="$work/tests/golden"

# 1. The machine.
if [ -z "$libtorch" ]; then
    libtorch="$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)"
fi
log "device $device; libtorch folder '$libtorch'; torch $("$python" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null)"
if [ "$device" != cpu ]; then nvidia-smi > "$results/nvidia-smi.txt" 2>&1; head -15 "$results/nvidia-smi.txt" >&2; fi

# 2. LibTorchSharp for that libtorch.
if [ "$skip_shim" = 0 ]; then
    log "building LibTorchSharp against $libtorch"
    cmake_prefix="$libtorch"
    [ -f "$libtorch/share/cmake/Torch/TorchConfig.cmake" ] || cmake_prefix="$(dirname "$libtorch")"
    if timeout 300 cmake -S "$root/build/native" -B "$work/shim" -G Ninja -DCMAKE_BUILD_TYPE=Release \
            -DTORCHSHARP_NATIVE="$work/src/Native" -DCMAKE_PREFIX_PATH="$cmake_prefix" > "$results/shim-build.log" 2>&1 &&
        timeout 300 cmake --build "$work/shim" --parallel "$(nproc)" >> "$results/shim-build.log" 2>&1 &&
        cmake --install "$work/shim" --prefix "$work/shim/out" >> "$results/shim-build.log" 2>&1; then
        cp "$work/shim/out/libLibTorchSharp.so" "$work/runner/"
        log "LibTorchSharp built in $(( $(date +%s) - started )) s since start"
    else
        log "LibTorchSharp build FAILED (shim-build.log); the runner keeps the TorchSharp package's (libtorch 2.10)"
        tail -30 "$results/shim-build.log" >&2
    fi
fi

run_runner() { # name timeout args...
    local name="$1" limit="$2"; shift 2
    timeout "$limit" "$runner" "$@" --libtorch "$libtorch" --out "$results/$name.json" > /dev/null 2> "$results/$name.log"
    local code=$?
    log "$name: exit $code ($(tail -1 "$results/$name.log"))"
    return $code
}

# 3. Devices; if loading from the folder fails, say so and retry with LD_LIBRARY_PATH (the issue's fallback).
if ! run_runner devices 120 devices --device "$device"; then
    tail -20 "$results/devices.log" >&2
    export LD_LIBRARY_PATH="$libtorch/lib:$work/runner${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "retrying with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    run_runner devices-ld-library-path 120 devices --device "$device"
fi
cat "$results/devices.json" 2>/dev/null >&2
# 3b. PyTorch's reading of the same GPU memory (summarize.py sets it beside the engine's, flagging a difference > 5 %).
timeout 120 "$python" "$root/bench/DeviceCheck/torch_memory.py" > "$results/torch-memory.json" 2> "$results/torch-memory.log"
log "torch.cuda.mem_get_info: exit $? ($(tail -1 "$results/torch-memory.log" 2>/dev/null))"

# 4. Golden parity.
run_runner "golden-$device-float32" "$step_timeout" golden --device "$device" --precision float32 --golden "$golden"
if [ "$device" = cpu ]; then reduced=bfloat16; else reduced=float16; fi
# 4b. diffusers' own loss to that precision on this device (float32 noise in both runs), the reduced check's bound.
log "diffusers 0.29.2 golden cases in float32 and $reduced on $device"
PYTHONPATH="$work/src${PYTHONPATH:+:$PYTHONPATH}" timeout "$step_timeout" "$python" "$root/bench/DeviceCheck/diffusers_golden.py" \
    --golden "$golden" --device "$device" --dtype "$reduced" --images "$results/diffusers-golden" \
    --out "$results/diffusers-golden-$device-$reduced.json" > "$results/diffusers-golden.log" 2>&1
log "diffusers golden: exit $? ($(tail -1 "$results/diffusers-golden.log"))"
reference=()
[ -s "$results/diffusers-golden-$device-$reduced.json" ] && reference=(--reference "$results/diffusers-golden-$device-$reduced.json")
run_runner "golden-$device-$reduced" "$step_timeout" golden --device "$device" --precision "$reduced" --golden "$golden" "${reference[@]}"

# 5 and 6. The bench, ours then diffusers', each with nvidia-smi sampling the GPU's memory.
sample_memory() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$results/$1-memory.csv" 2>/dev/null & echo $!; }
if [ "$skip_bench" = 0 ]; then
    sampler=$(sample_memory bench-ours)
    run_runner bench-ours "$step_timeout" bench --device "$device" --precision float16 --steps "$steps" --repeats 5
    kill "$sampler" 2>/dev/null
    sampler=$(sample_memory bench-diffusers)
    log "diffusers 0.29.2 on the same GPU"
    PYTHONPATH="$work/src${PYTHONPATH:+:$PYTHONPATH}" timeout 240 "$python" "$root/bench/DeviceCheck/diffusers_bench.py" \
        --configs "$root/src/Engine/Models/Configs" --scheduler "$root/src/Engine/SingleFile/Configs/sd21-ddim.scheduler.json" \
        --tokenizer "$root/src/Engine/Data/clip-tokenizer" --steps "$steps" --repeats 5 --out "$results/bench-diffusers.json" \
        > "$results/bench-diffusers.log" 2>&1
    log "diffusers: exit $? ($(tail -1 "$results/bench-diffusers.log"))"
    kill "$sampler" 2>/dev/null
fi

"$python" "$root/bench/DeviceCheck/summarize.py" "$results" >> "$results/summary.txt" 2>&1
log "done in $(( $(date +%s) - started )) s"
cat "$results/summary.txt"
