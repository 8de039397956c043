#!/usr/bin/env bash
# The CPU speed-run side by side on one machine: airbench94's recipe on torchlet
# (examples/cifar10_speedrun.rs) and the same recipe in PyTorch (benches/airbench_cpu.py),
# same threads, one after the other, alternating which goes first in each round.
#
#   benches/speedrun_compare.sh ARCHIVE [python]
#     ARCHIVE: cifar-10-binary.tar.gz; python: an interpreter with torch (default python3)
#   ROUNDS=2 EPOCHS=2 PRECISION=bf16 OUT=/tmp/speedrun benches/speedrun_compare.sh ARCHIVE
#     EPOCHS: shorter runs (default 9.9, the recipe's); PRECISION: PyTorch's fp32 (default,
#     channels_last) or bf16 autocast (AMX machines); OUT: where the JSON results go.
set -euo pipefail
cd "$(dirname "$0")/.."
archive="${1:?usage: benches/speedrun_compare.sh ARCHIVE [python]}"
py="${2:-python3}"
threads="${THREADS:-$(nproc)}"
rounds="${ROUNDS:-1}"
epochs="${EPOCHS:-9.9}"
precision="${PRECISION:-fp32}"
out="${OUT:-target/speedrun}"
features="${FEATURES:-torchlet/wgpu,torchlet/ndarray,torchlet/onnx}"
mkdir -p "$out"
export RAYON_NUM_THREADS="$threads"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; threads: $threads; $(date -u)"
cargo build --features "$features" --example cifar10_speedrun 2>&1 | grep -Ev '^\s*(Compiling|Finished)' || true
bin="${CARGO_TARGET_DIR:-target}/debug/examples/cifar10_speedrun"
torchlet() {
  echo "== torchlet, round $1"
  "$bin" --archive "$archive" --epochs "$epochs" --device flex --results "$out/torchlet-$1.json"
}
pytorch() {
  echo "== PyTorch ($precision), round $1"
  "$py" benches/airbench_cpu.py --archive "$archive" --epochs "$epochs" --threads "$threads" \
    --precision "$precision" --results "$out/pytorch-$1.json"
}
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then torchlet "$round"; pytorch "$round"; else pytorch "$round"; torchlet "$round"; fi
done
echo "results in $out/"
