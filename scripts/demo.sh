#!/usr/bin/env bash
# Fracta's main job, end to end, in a throwaway folder: write a starter project, check its
# config and print it resolved (secrets redacted). Run scripts/setup.sh first.
#
#   scripts/demo.sh             # KEEP=1 scripts/demo.sh keeps the folder
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
fracta="${FRACTA_BIN:-$target/release/fracta}"
if [[ ! -x "$fracta" ]]; then
  echo "error: $fracta not found; run scripts/setup.sh first (or set FRACTA_BIN)" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/fracta-demo.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
  trap 'echo; echo "kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
cd "$work"
# The agent CLIs installed by setup.sh, for the commands that start agents.
export PATH="$repo/node_modules/.bin:$PATH"

step() { printf '\n$ %s\n' "$*"; "$@"; }

step "$fracta" init
step "$fracta" config validate
step "$fracta" config show
