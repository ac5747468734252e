#!/usr/bin/env bash
# scripts/load.sh - runs meshload against a freshly started meshgw and prints its report.
#
# usage: scripts/load.sh [MESHLOAD ARGS...]
#
# Builds ./cmd/meshgw and ./cmd/meshload into a temporary directory, starts the gateway on
# 127.0.0.1:18554 (RTP from port 18000; LOAD_PORT, LOAD_RTP_PORT) with the routes demo (the built-in stream) and
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
# LOAD_PORT and LOAD_RTP_PORT move the gateway under test off 18554 and 18000 (LOAD_ORIGIN_PORT
# and LOAD_ORIGIN_RTP_PORT the origin below off 28554 and 28000), e.g. when another run holds
# them; a port that already answers is refused rather than measured, since -pid would then not be
# the process serving the readers.
# -routes N (a meshload flag) spreads the readers over N routes load0..load{N-1}, each with its
# own publisher, and reports loss per route and track:
#   scripts/load.sh -routes 10 -readers 100 -duration 10s
# LOAD_ORIGIN=1 is the pulled shape: a second meshgw (127.0.0.1:28554, RTP from 28000) is the
# origin, serving one clip at rtsp://127.0.0.1:28554/clip (a publisher route meshload publishes
# its synthetic stream to, -publish-url); the gateway under test gets N always-on routes
# pull0..pull{N-1} (just "pull" for N=1), each `source: rtsp://127.0.0.1:28554/clip`, N taken
# from -routes in ARGS; meshload waits until every route answers DESCRIBE (-wait-routes 60s),
# then reads them. -pid is the gateway under test's, so its CPU per delivered packet counts
# ingesting the N pulls and delivering to the readers; RSS is in the report's gateway line.
#   LOAD_ORIGIN=1 scripts/load.sh -routes 100 -readers 100 -duration 10s
#   LOAD_ORIGIN=1 scripts/load.sh -routes 100 -readers 0 -duration 10s     # RSS with the pulls, no readers
# LOAD_API=1 gives the gateway under test an api: listener on 127.0.0.1:19997 (LOAD_API_PORT);
# LOAD_SCRAPE=1 does too and fetches its /metrics once a second (curl) while meshload runs, so
#   LOAD_API=1 scripts/load.sh -readers 1000 -duration 20s
#   LOAD_SCRAPE=1 scripts/load.sh -readers 1000 -duration 20s
# compare the CPU per delivered packet without and with a Prometheus-like scraper.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
gw=""
far=""
origin=""
# stop PID...: end processes this script started (those still running) and wait for them
stop() {
  for p in "$@"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}
showlog() { # FILE NAME: show a log if something was written to it
  if [ -s "$1" ]; then
    echo "load.sh: $2 log:" >&2
    cat "$1" >&2
  fi
}
scraper=""
cleanup() {
  stop $scraper $far $gw $origin
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/meshgw" ./cmd/meshgw
go build -o "$tmp/meshload" ./cmd/meshload

port=${LOAD_PORT:-18554}
rtpport=${LOAD_RTP_PORT:-18000}
oport=${LOAD_ORIGIN_PORT:-28554}
ortpport=${LOAD_ORIGIN_RTP_PORT:-28000}
url=rtsp://127.0.0.1:$port/load
srtp=off
tlsargs=()
rtsps=""
pubargs=(-publish)
pulls=""
if [ -n "${LOAD_ORIGIN:-}" ]; then
  if [ -n "${LOAD_CLUSTER:-}${LOAD_SRTP:-}" ]; then
    echo "load.sh: LOAD_ORIGIN goes with neither LOAD_CLUSTER nor LOAD_SRTP" >&2
    exit 2
  fi
  # N from -routes in ARGS (the last one wins, as in meshload)
  routes=1
  prev=""
  for a in "$@"; do
    case "$a" in
      -routes=* | --routes=*) routes=${a#*=} ;;
    esac
    case "$prev" in
      -routes | --routes) routes=$a ;;
    esac
    prev=$a
  done
  if ! [[ "$routes" =~ ^[1-9][0-9]*$ ]]; then
    echo "load.sh: -routes $routes: want a positive number" >&2
    exit 2
  fi
  url=rtsp://127.0.0.1:$port/pull
  pubargs=(-publish-url "rtsp://127.0.0.1:$oport/clip" -wait-routes 60s)
  pull() { printf '  %s:\n    source: rtsp://127.0.0.1:%s/clip\n    reconnect_min: 200ms\n    reconnect_max: 1s\n' "$1" "$oport"; }
  if [ "$routes" = 1 ]; then
    pulls=$(pull pull)
  else
    pulls=$(for ((i = 0; i < routes; i++)); do pull "pull$i"; done)
  fi
  printf 'log_level: warn\nrtsp: {listen: 127.0.0.1:%s, rtp_port: %s}\nroutes:\n  clip:\n    source: publisher\n' "$oport" "$ortpport" >"$tmp/origin.yaml"
fi
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
  listen: 127.0.0.1:${port}
  rtp_port: ${rtpport}
  egress_workers: ${LOAD_EGRESS_WORKERS:-0}
${rtsps}
routes:
  demo:
    source: demo
  "~^load[0-9]*\$":
    source: publisher
    pacing: ${LOAD_PACING:-0}
    srtp: ${srtp}
${pulls}
YAML
apiport=${LOAD_API_PORT:-19997}
if [ -n "${LOAD_API:-}${LOAD_SCRAPE:-}" ]; then
  printf 'api: {listen: "127.0.0.1:%s"}\n' "$apiport" >>"$tmp/meshgw.yaml"
fi

inuse() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $port ${LOAD_ORIGIN:+$oport}; do
  if inuse "$p"; then
    echo "load.sh: 127.0.0.1:$p already answers (another run?); set LOAD_PORT / LOAD_ORIGIN_PORT" >&2
    exit 1
  fi
done

waitport() { # PORT PID LOG: wait for an RTSP port (bash's /dev/tcp: no extra tools needed)
  for _ in $(seq 100); do
    if inuse "$1"; then
      return 0
    fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "load.sh: meshgw exited at start:" >&2
      cat "$3" >&2
      exit 1
    fi
    sleep 0.1
  done
}

if [ -n "${LOAD_ORIGIN:-}" ]; then
  "$tmp/meshgw" run -c "$tmp/origin.yaml" 2>"$tmp/origin.log" &
  origin=$!
  waitport "$oport" "$origin" "$tmp/origin.log"
fi

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

waitport "$port" "$gw" "$tmp/meshgw.log"

if [ -n "${LOAD_SCRAPE:-}" ]; then
  # a scrape a second, as a Prometheus with scrape_interval: 1s; the last one's series count is
  # printed at the end
  (
    while :; do
      curl -sf "http://127.0.0.1:$apiport/metrics" >"$tmp/metrics.txt.new" && mv "$tmp/metrics.txt.new" "$tmp/metrics.txt"
      sleep 1
    done
  ) &
  scraper=$!
fi

status=0
"$tmp/meshload" -pid "$pid" -url "$url" "${tlsargs[@]}" "${pubargs[@]}" -readers 100 "$@" || status=$?

if [ -n "$scraper" ]; then
  stop $scraper
  scraper=""
  echo "load.sh: last /metrics scrape: $(grep -vc '^#' "$tmp/metrics.txt") series" >&2
fi
stop $gw $far $origin
gw="" far="" origin=""
# the gateway's log last, after the far node's and the origin's
showlog "$tmp/far.log" "far node"
showlog "$tmp/origin.log" origin
showlog "$tmp/meshgw.log" meshgw
exit "$status"
