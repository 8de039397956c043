#!/usr/bin/env bash
# The CPU speed-run side by side on one machine: airbench94's recipe on torchlet
# (examples/cifar10_speedrun.rs) and the same recipe in PyTorch (benches/airbench_cpu.py),
# same threads, one after the other, alternating which goes first in each round; then the
# summary and the time-to-accuracy plot (scripts/plot_speedrun.py).
#
#   benches/speedrun_compare.sh ARCHIVE [python]
#     ARCHIVE: cifar-10-binary.tar.gz; python: an interpreter with torch (default python3)
#   SEEDS="0 1 2 3 4" EPOCHS=2 PRECISION=bf16 OUT=/tmp/speedrun benches/speedrun_compare.sh ARCHIVE
#     SEEDS: one round per seed (default "0"); EPOCHS: shorter runs (default 9.9, the
#     recipe's); PRECISION: fp32 (default; PyTorch in channels_last) or bf16 (torchlet's bf16
#     products, PyTorch's bf16 autocast; for CPUs with AVX512-BF16 or AMX); OUT: where the
#     JSON results, peak memory and the plot go.
set -euo pipefail
archive="$(realpath "${1:?usage: benches/speedrun_compare.sh ARCHIVE [python]}")"
cd "$(dirname "$0")/.."
py="${2:-python3}"
threads="${THREADS:-$(nproc)}"
seeds="${SEEDS:-0}"
epochs="${EPOCHS:-9.9}"
precision="${PRECISION:-fp32}"
out="${OUT:-target/speedrun}"
features="${FEATURES:-torchlet/wgpu,torchlet/ndarray,torchlet/onnx}"
mkdir -p "$out"
export RAYON_NUM_THREADS="$threads"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; threads: $threads; $(date -u)"
echo "instruction sets: $(grep -o 'avx512[a-z_0-9]*\|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
cargo build --features "$features" --example cifar10_speedrun 2>&1 | grep -Ev '^\s*(Compiling|Finished)' || true
bin="${CARGO_TARGET_DIR:-target}/debug/examples/cifar10_speedrun"
# Peak resident memory of a run, in MiB, next to its JSON (GNU time where the machine has it).
peak() {
  local name="$1"; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M' -o "$out/$name.peak-kib" "$@"
    echo "$name: peak resident memory $(( $(cat "$out/$name.peak-kib") / 1024 )) MiB"
  else
    "$@"
  fi
}
torchlet() {
  echo "== torchlet ($precision), seed $1"
  peak "torchlet-$1" "$bin" --archive "$archive" --epochs "$epochs" --device flex --seed "$1" \
    --precision "$precision" --results "$out/torchlet-$1.json"
}
pytorch() {
  echo "== PyTorch ($precision), seed $1"
  peak "pytorch-$1" "$py" benches/airbench_cpu.py --archive "$archive" --epochs "$epochs" \
    --threads "$threads" --precision "$precision" --seed "$1" --results "$out/pytorch-$1.json"
}
round=0
for seed in $seeds; do
  round=$((round + 1))
  if [ $((round % 2)) -eq 1 ]; then torchlet "$seed"; pytorch "$seed"; else pytorch "$seed"; torchlet "$seed"; fi
done
# This run's seeds only, not older results left in $out.
ours=(); theirs=()
for seed in $seeds; do ours+=("$out/torchlet-$seed.json"); theirs+=("$out/pytorch-$seed.json"); done
python3 scripts/plot_speedrun.py --torchlet "${ours[@]}" --pytorch "${theirs[@]}" --svg "$out/speedrun.svg"
echo "results in $out/"
