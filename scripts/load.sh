#!/usr/bin/env bash
# scripts/load.sh - runs meshload against a freshly started meshgw and prints its report.
#
# usage: scripts/load.sh [MESHLOAD ARGS...]
#
# Builds ./cmd/meshgw and ./cmd/meshload into a temporary directory, starts the gateway on
# 127.0.0.1:18554 (RTP from port 18000) with the routes demo (the built-in stream) and
# load, load0, load1, ... (publisher routes, one regex), waits for its RTSP port, runs
#   meshload -pid <gateway pid> -url rtsp://127.0.0.1:18554/load -publish -readers 100 ARGS...
# stops the gateway and exits with meshload's status. ARGS come last and later flags win, so
#   scripts/load.sh -readers 1000 -duration 10s
#   scripts/load.sh -publishers 2 -bitrate 50000000 -readers 2
#   scripts/load.sh -publish=false -url rtsp://127.0.0.1:18554/demo -transport tcp
#   LOAD_PACING=3 scripts/load.sh -readers 100 -rcvbuf 0
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
gw=""
cleanup() {
  if [ -n "$gw" ] && kill -0 "$gw" 2>/dev/null; then
    kill "$gw" 2>/dev/null || true
    wait "$gw" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/meshgw" ./cmd/meshgw
go build -o "$tmp/meshload" ./cmd/meshload

# LOAD_PACING=3 paces the load routes (routes.*.pacing); LOAD_EGRESS_WORKERS sets rtsp.egress_workers.
cat >"$tmp/meshgw.yaml" <<YAML
log_level: warn
rtsp:
  listen: 127.0.0.1:18554
  rtp_port: 18000
  egress_workers: ${LOAD_EGRESS_WORKERS:-0}
routes:
  demo:
    source: demo
  "~^load[0-9]*\$":
    source: publisher
    pacing: ${LOAD_PACING:-0}
YAML

"$tmp/meshgw" run -c "$tmp/meshgw.yaml" 2>"$tmp/meshgw.log" &
gw=$!

# wait for the RTSP port (bash's /dev/tcp: no extra tools needed)
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/18554) 2>/dev/null; then
    break
  fi
  if ! kill -0 "$gw" 2>/dev/null; then
    echo "load.sh: meshgw exited at start:" >&2
    cat "$tmp/meshgw.log" >&2
    exit 1
  fi
  sleep 0.1
done

status=0
"$tmp/meshload" -pid "$gw" -url rtsp://127.0.0.1:18554/load -publish -readers 100 "$@" || status=$?

kill "$gw"
wait "$gw" 2>/dev/null || true
gw=""
if [ -s "$tmp/meshgw.log" ]; then
  echo "load.sh: meshgw log:" >&2
  cat "$tmp/meshgw.log" >&2
fi
exit "$status"
