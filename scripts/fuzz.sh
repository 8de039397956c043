#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for N seconds each (default 600), one after the
# other, with the committed seeds (fuzz/seeds/<target>) and a growing corpus (fuzz/corpus/).
#
#   scripts/fuzz.sh [seconds [target...]]
#
# Needs `cargo install cargo-fuzz` and a nightly toolchain (libFuzzer's instrumentation).
# An input slower than 1 s is reported as a hang (-timeout=1); memory is capped at 2 GiB
# (-rss_limit_mb=2048), so an allocation sized by an unchecked length is a crash. Findings go
# to fuzz/artifacts/<target>/; a summary line per target is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/work/target-fuzz}"
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t/run.log"
  start=$(date +%s)
  status=ok
  if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$secs" -timeout=1 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    status=FAILED
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  summary+=("$t: $status, $(( $(date +%s) - start )) s, $execs executions, corpus $corpus files")
done
printf '%s\n' "${summary[@]}"
