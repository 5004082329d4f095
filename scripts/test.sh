#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this):
# formatting, clippy with warnings denied, every crate's tests and the doc tests.
#
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==> %s\n' "$*"; }

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
  section "cargo nextest run --workspace"
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doc tests.
  section "cargo test --doc --workspace"
  cargo test --workspace --doc --locked
else
  section "cargo test --workspace (cargo-nextest is not installed)"
  cargo test --workspace --locked --no-fail-fast
fi

section "All tests passed"
