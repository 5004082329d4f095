#!/usr/bin/env bash
# Run the benchmarks and print each one's median (criterion reports means by default).
#
#   scripts/bench.sh            # all benches
#   scripts/bench.sh -p fracta-config --bench load
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ $# -eq 0 ]]; then set -- --workspace; fi
cargo bench --locked "$@"

dir="${CARGO_TARGET_DIR:-target}/criterion"
echo
echo "Medians:"
find "$dir" -path '*/new/estimates.json' | sort | while read -r f; do
  name="${f#"$dir"/}"
  name="${name%/new/estimates.json}"
  python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))["median"]
ci = m["confidence_interval"]
def fmt(ns):
    return "%.3f ms" % (ns / 1e6) if ns >= 1e6 else "%.1f µs" % (ns / 1e3)
print("  %-45s %s  [%s .. %s]" % (sys.argv[2], fmt(m["point_estimate"]), fmt(ci["lower_bound"]), fmt(ci["upper_bound"])))
' "$f" "$name"
done
