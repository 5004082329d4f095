#!/usr/bin/env python3
"""A stand-in agent CLI that times Fracta's MCP gateway as an agent sees it.

Use it as a runtime's `command` (Codex's adapter, which passes the gateway as
`-c mcp_servers.fracta.url="…"`), e.g. in fracta.yaml:

    agents:
      agent_runtimes:
        probe:
          adapter: codex
          command: /path/to/scripts/gateway-probe.py

then `fracta spawn --runtime probe --prompt hi`. It sends `initialize` and `tools/list` 50
times each over one keep-alive connection with the agent's own token, appends the medians to
$GATEWAY_PROBE_OUT (default /tmp/gateway-probe.txt), and prints a recorded Codex turn so the
spawn succeeds.
"""
import http.client
import json
import os
import re
import sys
import time
from pathlib import Path

url = next(
    re.search(r'"(http://[^"]+)"', a).group(1)
    for a in sys.argv
    if a.startswith("mcp_servers.fracta.url=")
)
host, path = re.match(r"http://([^/]+)(/.*)", url).groups()
headers = {
    "Authorization": "Bearer " + os.environ["FRACTA_AGENT_TOKEN"],
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}
conn = http.client.HTTPConnection(host)


def call(body):
    t = time.perf_counter()
    conn.request("POST", path, json.dumps(body), headers)
    r = conn.getresponse()
    data = r.read()
    return (time.perf_counter() - t) * 1e3, r.status, len(data)


init = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"},
    },
}
res = {"initialize": [], "tools/list": []}
for _ in range(50):
    res["initialize"].append(call(init))
    call({"jsonrpc": "2.0", "method": "notifications/initialized"})
    res["tools/list"].append(call({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
with open(os.environ.get("GATEWAY_PROBE_OUT", "/tmp/gateway-probe.txt"), "a") as f:
    for name, runs in res.items():
        ms = sorted(r[0] for r in runs)
        f.write(
            f"{name}: first {runs[0][0]:.3f} ms, median {ms[len(ms) // 2]:.3f} ms, p90 {ms[int(len(ms) * 0.9)]:.3f} ms, "
            f"HTTP {runs[0][1]}, {runs[0][2]} bytes\n"
        )
transcript = Path(__file__).resolve().parent.parent / "crates/core/fixtures/transcripts/codex/text.jsonl"
sys.stdout.write(transcript.read_text())
