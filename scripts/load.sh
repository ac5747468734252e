#!/usr/bin/env bash
# scripts/load.sh - runs meshload against a freshly started meshgw and prints its report.
#
# usage: scripts/load.sh [MESHLOAD ARGS...]
#
# Builds ./cmd/meshgw and ./cmd/meshload into a temporary directory, starts the gateway on
# 127.0.0.1:18554 (RTP from port 18000) with the routes demo (the built-in stream) and
# load, load0, load1, ... (publisher routes, one regex), waits for its RTSP port, runs
#   meshload -pid <gateway pid> -url rtsp://127.0.0.1:18554/load -publish -readers 100 ARGS...
# (see LOAD_SRTP below for the rtsps:// variant)
# stops the gateway and exits with meshload's status. ARGS come last and later flags win, so
#   scripts/load.sh -readers 1000 -duration 10s
#   scripts/load.sh -publishers 2 -bitrate 50000000 -readers 2
#   scripts/load.sh -publish=false -url rtsp://127.0.0.1:18554/demo -transport tcp
#   LOAD_PACING=3 scripts/load.sh -readers 100 -rcvbuf 0
# LOAD_CLUSTER=1 runs a control plus one far node (127.0.0.1, RTP from 19000) whose client network
# is 127.0.0.0/8: the publisher lands on the control's local node, the stream is relayed once to
# the far node, the far node serves every reader, and -pid is the far node's, so the report is the
# fan-out cost on a far node.
# LOAD_SRTP=1 measures SRTP to readers: the gateway also serves RTSPS on 127.0.0.1:18322 with a
# self-signed certificate made with openssl in the temporary directory, the load routes get
# `srtp: optional`, and meshload gets -url rtsps://127.0.0.1:18322/load -tls-ca CERT -srtp. The
# readers take the keyed DESCRIBE (SDES a=crypto) and SETUP plain RTP/AVP as FFmpeg does, so the
# gateway encrypts every delivered packet with the reader's own key; -srtp makes a reader that got
# no key fail instead of measuring plain RTP. The publisher uses the same rtsps:// URL but sends
# plain RTP (no keys in its ANNOUNCE): that is why the routes are `optional`, since `required`
# refuses a plain publisher, while a keyed reader is served the same either way. Latency is
# reported as unavailable (payloads are encrypted); delivery and loss come from the clear headers.
# Compare with a plain run of the same arguments; scripts/perf.sh does both.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
gw=""
far=""
cleanup() {
  for p in $far $gw; do
    if kill -0 "$p" 2>/dev/null; then
      kill "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/meshgw" ./cmd/meshgw
go build -o "$tmp/meshload" ./cmd/meshload

url=rtsp://127.0.0.1:18554/load
srtp=off
tlsargs=()
rtsps=""
if [ -n "${LOAD_SRTP:-}" ]; then
  if [ -n "${LOAD_CLUSTER:-}" ]; then
    echo "load.sh: LOAD_SRTP and LOAD_CLUSTER together are not supported" >&2
    exit 2
  fi
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/openssl.log" || {
    cat "$tmp/openssl.log" >&2
    exit 1
  }
  srtp=optional
  url=rtsps://127.0.0.1:18322/load
  tlsargs=(-tls-ca "$tmp/cert.pem" -srtp)
  rtsps="rtsps: {listen: 127.0.0.1:18322, cert: $tmp/cert.pem, key: $tmp/key.pem}"
fi

# LOAD_PACING=3 paces the load routes (routes.*.pacing); LOAD_EGRESS_WORKERS sets rtsp.egress_workers.
cat >"$tmp/meshgw.yaml" <<YAML
log_level: warn
rtsp:
  listen: 127.0.0.1:18554
  rtp_port: 18000
  egress_workers: ${LOAD_EGRESS_WORKERS:-0}
${rtsps}
routes:
  demo:
    source: demo
  "~^load[0-9]*\$":
    source: publisher
    pacing: ${LOAD_PACING:-0}
    srtp: ${srtp}
YAML

role=run
if [ -n "${LOAD_CLUSTER:-}" ]; then
  role=control
  "$tmp/meshgw" certs -dir "$tmp/pki" -td load.test far >/dev/null
  idn() { printf 'identity: {trust_domain: load.test, cert: %s/%s.pem, key: %s/%s.key, bundle: %s/ca.pem}\n' "$tmp/pki" "$1" "$tmp/pki" "$1" "$tmp/pki"; }
  { idn control
    printf 'control: {listen: "127.0.0.1:18443", startup_grace: 0s}\nnode: {name: control, data_address: 127.0.0.1}\n'
  } >>"$tmp/meshgw.yaml"
  { idn far
    printf 'log_level: warn\nrtsp: {rtp_port: 19000, egress_workers: %s}\n' "${LOAD_EGRESS_WORKERS:-0}"
    printf 'node: {name: far, control: "127.0.0.1:18443", data_address: 127.0.0.1, client_networks: [127.0.0.0/8]}\n'
  } >"$tmp/far.yaml"
fi
"$tmp/meshgw" "$role" -c "$tmp/meshgw.yaml" 2>"$tmp/meshgw.log" &
gw=$!
pid=$gw
if [ -n "${LOAD_CLUSTER:-}" ]; then
  "$tmp/meshgw" node -c "$tmp/far.yaml" 2>"$tmp/far.log" &
  far=$!
  pid=$far
  sleep 1
fi

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
"$tmp/meshload" -pid "$pid" -url "$url" "${tlsargs[@]}" -publish -readers 100 "$@" || status=$?

kill "$gw"
wait "$gw" 2>/dev/null || true
gw=""
if [ -n "$far" ]; then
  kill "$far"
  wait "$far" 2>/dev/null || true
  far=""
  if [ -s "$tmp/far.log" ]; then
    echo "load.sh: far node log:" >&2
    cat "$tmp/far.log" >&2
  fi
fi
if [ -s "$tmp/meshgw.log" ]; then
  echo "load.sh: meshgw log:" >&2
  cat "$tmp/meshgw.log" >&2
fi
exit "$status"
