#!/usr/bin/env bash
# Side by side on one GPU machine: torchlet on wgpu (one device, then every listed device
# data-parallel) and PyTorch CUDA (eager fp32 and channels_last AMP), same networks and
# batches, one after the other.
#
#   benches/gpu.sh [bench-binary [python]]
#
# bench-binary: a built `devices` bench (the GPU machine has no network, so build it where
# there is one: `cargo bench --release --features torchlet/wgpu --bench devices --no-run`,
# copy target/release/deps/devices-<hash> next to the checkout, carry it); default: build it
# here. Release, not the tests' dev profile: that one builds the GPU stack (wgpu, CubeCL) at
# opt-level 1, which would slow the host side of every GPU step. DEVICES (default wgpu) and MULTI (e.g. wgpu:0,wgpu:1; default none)
# choose torchlet's device lists; STEPS the timed steps (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
py="${2:-python3}"
steps="${STEPS:-20}"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $(date -u)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
if [ -z "$bin" ]; then
  cargo bench --release --features torchlet/wgpu --bench devices -- --devices "${DEVICES:-wgpu}" --steps "$steps"
else
  "$bin" --bench --devices "${DEVICES:-wgpu}" --steps "$steps"
  if [ -n "${MULTI:-}" ]; then "$bin" --bench --devices "$MULTI" --steps "$steps"; fi
fi
"$py" benches/pytorch_gpu.py --steps "$steps"
