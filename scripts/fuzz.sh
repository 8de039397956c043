#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for N seconds each (default 600), one after the
# other, with the committed seeds (fuzz/seeds/<target>) and a growing corpus (fuzz/corpus/).
#
#   scripts/fuzz.sh [seconds [target...]]
#
# Needs `cargo install cargo-fuzz`. libFuzzer's instrumentation takes nightly compiler flags:
# the nightly toolchain when rustup has one, else the stable one with RUSTC_BOOTSTRAP=1
# (stable ships the same AddressSanitizer runtime).
# An input slower than 1 s is reported as a hang (-timeout=1); memory is capped at 2 GiB
# (-rss_limit_mb=2048), so an allocation sized by an unchecked length is a crash. Findings go
# to fuzz/artifacts/<target>/; a summary line per target is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("${fuzz[@]}" list)
fi
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/work/target-fuzz}"
summary=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="fuzz/artifacts/$t/run.log"
  start=$(date +%s)
  status=ok
  if ! "${fuzz[@]}" run "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$secs" -timeout=1 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    status=FAILED
    failed=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  summary+=("$t: $status, $(( $(date +%s) - start )) s, $execs executions, corpus $corpus files")
done
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "a fuzz target failed: see fuzz/artifacts/<target>/run.log and the crash files there"
fi
exit "$failed"
