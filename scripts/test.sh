#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this):
# formatting, clippy with warnings denied, every crate's tests and the doc tests, a smoke run
# of the overhead bench, the OpenAPI document's validation and the book's build.
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

# Not a measurement: one Codex run and one instant-CLI run in a debug build, so that a change
# that breaks the bench (as an agent that changes nothing leaving no worktree once did) fails
# here rather than when someone next measures. `--workspace --profile test` resolves features
# as the test build above did, so it reuses that build (`-p fracta` rebuilt ~2 min of crates).
section "the overhead bench still runs (a smoke run, debug build)"
FRACTA_BENCH_RUNS=1 FRACTA_BENCH_RUNTIMES=codex FRACTA_BENCH_OWN_RUNS=1 \
  cargo bench --workspace --bench overhead --profile test --locked

section "docs/openapi.json is a valid OpenAPI 3.1 document"
if python3 -c 'import openapi_spec_validator' 2>/dev/null; then
  python3 - <<'PY'
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename
doc, _ = read_from_filename("docs/openapi.json")
validate(doc)
print("docs/openapi.json: valid")
PY
elif [[ "${CI:-}" == "true" ]]; then
  echo "error: openapi-spec-validator is not installed (pip install -r scripts/requirements-ci.txt)" >&2
  exit 1
else
  echo "skipped: openapi-spec-validator is not installed (pip install -r scripts/requirements-ci.txt)"
fi

section "the book (docs/) builds with mdBook"
if command -v mdbook >/dev/null 2>&1; then
  mdbook build docs
elif [[ "${CI:-}" == "true" ]]; then
  echo "error: mdbook is not installed (cargo install mdbook --version 0.5.4 --locked)" >&2
  exit 1
else
  echo "skipped: mdbook is not installed (cargo install mdbook --version 0.5.4 --locked --no-default-features --features search)"
fi

section "All tests passed"
