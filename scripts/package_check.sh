#!/usr/bin/env bash
# `cargo add torchlet` as a user would: `cargo package` for the four crates, then a throwaway
# crate that depends on `torchlet = "0.1"` (patched to the packaged sources, as they are not on
# crates.io) is built and trains one step (scripts/user_crate/main.rs).
#
#   scripts/package_check.sh
#
# It builds in CARGO_TARGET_DIR (default /work/target) with the repository's Cargo.lock and
# profile. Burn is compiled again for it (the user crate's feature resolution differs from the
# workspace's, which changes the hashes of Burn's tree): 11 min on 2 cores (2026-12-04).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# The packages' contents are checked here; the build below is their verification.
cargo package --workspace --no-verify --allow-dirty -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
crates=(torchlet torchlet-data torchlet-model torchlet-train)
for c in "${crates[@]}"; do
  crate="$CARGO_TARGET_DIR/package/$c-$version.crate"
  size=$(stat -c %s "$crate")
  echo "$c-$version.crate: $size bytes, $(tar -tzf "$crate" | wc -l) files"
  if [ "$size" -gt 2000000 ]; then
    echo "$crate is larger than 2 MB" >&2
    exit 1
  fi
  tar -xzf "$crate" -C "$work"
done
mkdir -p "$work/user/src"
{
  cat <<TOML
[package]
name = "user-crate"
version = "0.1.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
torchlet = { version = "$version", features = ["wgpu", "ndarray", "onnx"] }
anyhow = "1"
tempfile = "3"

[patch.crates-io]
TOML
  for c in "${crates[@]}"; do
    echo "$c = { path = \"../$c-$version\" }"
  done
  echo
  # The repository's profile (optimised dependencies in dev builds).
  sed -n '/^\[profile/,$p' Cargo.toml
} >"$work/user/Cargo.toml"
cp Cargo.lock "$work/user/Cargo.lock"
cp scripts/user_crate/main.rs "$work/user/src/main.rs"
cd "$work/user"
BURN_DEVICE=flex cargo run -q
echo "package check passed"
