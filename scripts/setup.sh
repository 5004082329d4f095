#!/usr/bin/env bash
# Set up Fracta on a fresh machine: check the toolchains, install the pinned agent CLIs
# (claude, codex, opencode) from package-lock.json, and build the release binary.
#
#   scripts/setup.sh            # then: ./target/release/fracta --help
#
# Needs: Rust (cargo, 1.89 or newer) and Node.js 20+ with npm. Network: crates.io and the
# npm registry only. Re-running it is safe.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==> %s\n' "$*"; }
need() {
  command -v "$1" >/dev/null 2>&1 || {
    printf 'error: `%s` is not installed. %s\n' "$1" "$2" >&2
    exit 1
  }
}

section "Checking toolchains"
need cargo "Install Rust from https://rustup.rs (or your package manager), then re-run."
need node "Install Node.js 20 or newer (https://nodejs.org), then re-run."
need npm "npm comes with Node.js; install Node.js 20 or newer, then re-run."
cargo --version
printf 'node %s, npm %s\n' "$(node --version)" "$(npm --version)"

section "Installing the pinned agent CLIs (npm ci)"
npm ci --no-audit --no-fund
for cli in claude codex opencode; do
  printf '  %-9s %s\n' "$cli" "$(node_modules/.bin/$cli --version 2>/dev/null | head -n1 || echo '(not runnable here)')"
done

section "Installing the dashboard's browser-test driver (npm ci in crates/cli/tests/browser)"
# The tests drive Debian's chromium (apt-get install chromium); playwright-core fetches none.
npm ci --no-audit --no-fund --prefix crates/cli/tests/browser
command -v chromium >/dev/null 2>&1 \
  || echo "warning: chromium is not installed; the dashboard's browser tests need it (apt-get install chromium)" >&2

section "Installing the test suite's Python checkers (pip)"
# kubernetes-validate (rendered objects against the Kubernetes schemas) and
# openapi-spec-validator: the test suite fails, rather than skips, without them.
if command -v python3 >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-ci.txt \
    || echo "warning: pip could not install scripts/requirements-ci.txt; scripts/test.sh needs it" >&2
else
  echo "warning: python3 is not installed; scripts/test.sh needs it for its Python checkers" >&2
fi

section "Building fracta (cargo build --release)"
cargo build --release --locked -p fracta

bin="${CARGO_TARGET_DIR:-target}/release/fracta"
section "Done: $bin"
"$bin" --version
