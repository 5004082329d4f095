#!/usr/bin/env bash
# Fracta's main job, end to end, in a throwaway git project: write a starter config and task,
# check the config, then run the `hello` task on the real Claude Code CLI and show what it
# recorded. With no ANTHROPIC_API_KEY set, the model is Fracta's scripted model server
# (offline); with one set, the same commands use the real API. Run scripts/setup.sh first.
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
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  if [[ "${KEEP:-0}" == 1 ]]; then echo; echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
cd "$work"
# The agent CLIs installed by setup.sh (Fracta also finds them there by itself).
export PATH="$repo/node_modules/.bin:$PATH"

step() { printf '\n$ %s\n' "$*"; "$@"; }

git init -q -b main
git -c user.name=demo -c user.email=demo@localhost commit -q --allow-empty -m "empty project"

step "$fracta" init

if [[ -z "${ANTHROPIC_API_KEY:-}" ]]; then
  echo
  echo "# No ANTHROPIC_API_KEY: starting Fracta's scripted model server, so this runs offline."
  "$fracta" model-server --listen 127.0.0.1:0 --script "$repo/examples/demo-model-script.yaml" >"$work/.model-server.out" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 50); do
    url="$(grep -o 'http://127.0.0.1:[0-9]*' "$work/.model-server.out" | head -n1 || true)"
    [[ -n "$url" ]] && break
    sleep 0.1
  done
  [[ -n "$url" ]] || { echo "error: the model server did not start" >&2; cat "$work/.model-server.out" >&2; exit 1; }
  # Point the claude runtime at it (with a real key you would skip this and keep the config).
  sed -i "s|^      adapter: claude .*|&\n      env:\n        ANTHROPIC_BASE_URL: \"$url\"\n        ANTHROPIC_API_KEY: offline-demo-key|" fracta.yaml
  echo "# fracta.yaml: agents.agent_runtimes.claude.env.ANTHROPIC_BASE_URL = $url"
fi

step "$fracta" config validate
step "$fracta" task list
step "$fracta" spawn --task hello --runtime claude
id="$("$fracta" ps --all --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
step "$fracta" ps --all
step "$fracta" logs "$id"
branch="$("$fracta" show "$id" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["branch"])')"
step git log --oneline --stat "$branch" -1
echo
echo "# To use a real model instead: export ANTHROPIC_API_KEY=... and run this again (or remove"
echo "# the env block from fracta.yaml in your own project)."
