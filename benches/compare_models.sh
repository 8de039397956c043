#!/usr/bin/env bash
# Side by side on one machine, one after the other in one run: torchlet's model benchmark
# (Flex and NdArray) and PyTorch's (default layout and channels_last), same thread count.
#
#   benches/compare_models.sh [python [filter]]
#     python: an interpreter with torch (default python3)
#     filter: only torchlet cases whose name contains it, e.g. `flex` (NdArray takes minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-python3}"
threads="${THREADS:-$(nproc)}"
export RAYON_NUM_THREADS="$threads" BURN_DEVICE=flex
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; threads: $threads; $(date -u)"
# The test command's feature set by default, so the build the tests made is reused.
features="${FEATURES:-torchlet/wgpu,torchlet/ndarray}"
cargo bench --profile dev --features "$features" --bench model -- ${2:+"$2"} 2>&1 | grep -Ev '^\s*(Compiling|Finished|Running)'
"$py" benches/pytorch_model.py --threads "$threads"
