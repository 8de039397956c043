#!/usr/bin/env bash
# Side by side on one machine, in one run: torchlet's model benchmark (Flex and NdArray) and
# PyTorch's (default layout and channels_last), same thread count.
#
#   benches/compare_models.sh [python [filter]]
#     python: an interpreter with torch (default python3)
#     filter: only torchlet cases whose name contains it, e.g. `flex` (NdArray takes minutes)
#
#   ROUNDS=5 [MODELS="Airbench94 Resnet18 Vgg11"] benches/compare_models.sh [python]
#     The conv net only, or the named networks (MODELS: the model zoo's training steps, on
#     torchlet's kernels and on Burn's conv2d, against both PyTorch layouts), in 5 rounds
#     that alternate which side goes first, then the ratio of each round and their median
#     (benches/compare_summary.py): on a machine whose speed drifts from minute to minute,
#     the ratios of short, interleaved rounds are steadier than one long run of each side.
#     Where the CPU has AVX512-BF16 (or AMX) both sides add bf16 rows: torchlet's bf16
#     products against PyTorch's bf16 autocast. BURN_CONV=0 leaves out the Burn conv2d rows.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${1:-python3}"
threads="${THREADS:-$(nproc)}"
rounds="${ROUNDS:-1}"
export RAYON_NUM_THREADS="$threads" BURN_DEVICE=flex
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; threads: $threads; $(date -u)"
# The test command's feature set by default, so the build the tests made is reused.
features="${FEATURES:-torchlet/wgpu,torchlet/ndarray}"
if [ "$rounds" -le 1 ]; then
  cargo bench --profile dev --features "$features" --bench model -- ${2:+"$2"} 2>&1 | grep -Ev '^\s*(Compiling|Finished|Running)'
  "$py" benches/pytorch_model.py --threads "$threads"
  exit 0
fi
models="${MODELS:-SeedConvNet}"
torchlet() {
  for model in $models; do
    if [ "$model" = SeedConvNet ]; then
      cargo bench --profile dev --features "$features" --bench model -- "flex: SeedConvNet" '!Burn conv'
    else
      local skip=()
      [ "${BURN_CONV:-1}" = 0 ] && skip=('!Burn conv')
      cargo bench --profile dev --features "$features" --bench model -- "$model" '!ndarray' "${skip[@]}"
    fi 2>&1 | grep -Ev '^\s*(Compiling|Finished|Running)'
  done
}
pytorch() {
  # shellcheck disable=SC2086 # one argument per model
  "$py" benches/pytorch_model.py --threads "$threads" --iters "${TORCHLET_BENCH_ITERS:-20}" --models $models
}
log="$(mktemp)"
trap 'rm -f "$log" "$log.build"' EXIT
if ! cargo bench --profile dev --features "$features" --bench model --no-run >/dev/null 2>"$log.build"; then
  cat "$log.build"
  exit 1
fi
for round in $(seq 1 "$rounds"); do
  echo "== round $round, $(date -u +%H:%M:%S) UTC" | tee -a "$log"
  if [ $((round % 2)) -eq 1 ]; then
    { torchlet; pytorch; } 2>&1 | tee -a "$log"
  else
    { pytorch; torchlet; } 2>&1 | tee -a "$log"
  fi
done
"$py" benches/compare_summary.py "$log"
