#!/usr/bin/env bash
# scripts/soak.sh - churn soak: runs a gateway for DURATION under continuous churn and judges
# whether its RSS, goroutines, open fds and UDP sockets stay flat.
#
# usage: scripts/soak.sh DURATION          (e.g. 30m, 10m, 90s)
#
# Builds ./cmd/meshgw and ./cmd/meshload into the run directory (SOAK_DIR, default
# /tmp/meshgw-soak-DATE; kept, with every log and CSV), starts an origin meshgw serving its demo
# stream and the gateway under test (all-in-one `meshgw run`, or with SOAK_CLUSTER=1 a control
# plus the nodes "far" and "edge"), then:
#   start   a reader that stays connected all along (meshload, UDP, route demo) joins; the sampler
#           writes SOAK_QUIET of quiet samples (the baseline)
#   churn   for DURATION, each loop again and again (SOAK_CYCLE seconds per round, 15):
#             meshload: a publisher (re)connects to load with UDP readers; TCP readers of pull;
#                       SRTP readers (rtsps://, keyed DESCRIBE) of demo
#             ffmpeg:   a publisher (re)connects to load1 over TCP (-c copy of a clip made with
#                       libx264 at the start); readers with -c copy -f null: UDP of pull, TCP of
#                       load1, RTSPS+SRTP of demo, multicast of demo (SOAK_MULTICAST=0: none)
#             meshload guess: a wrong password every 2 s from 127.0.0.2 on route secure
#                       (max_failures 3, ban_time 20s: bans come and go)
#           the origin (the pull route's camera) is SIGKILLed and restarted every 60 s; with
#           SOAK_CLUSTER=1 node edge (where the pulled streams are ingested) every 120 s
#   quiet   the churn stops, the killed processes are back; samples for SOAK_QUIET more
# The sampler (meshload sample) writes SOAK_DIR/NAME.csv every SOAK_INTERVAL seconds (10) for
# each meshgw process: VmRSS, open fds, UDP sockets, and from the ops listener's /debug/pprof/
# (api.pprof) goroutines and the live heap after a forced collection (-1 for the origin, which
# has no ops listener). meshload verdict then prints the table and exits 1 on a leak: after the
# warm-up (SOAK_WARMUP, default a fifth of DURATION, at most 3m) a least-squares slope of the live
# heap above SOAK_HEAP_SLOPE KiB/min (64) or of RSS above SOAK_RSS_SLOPE KiB/min (1024); or
# goroutines / fds / UDP sockets at the quiet end above the quiet start (slack 10 / 4 / 2); or the
# staying reader went without packets for more than SOAK_MAX_SILENCE (2s) other than within 15 s
# of a kill or restart of edge. Processes the soak restarts are sampled but not judged.
# See docs/TESTING.md, "Churn soak". Ports: SOAK_PORT (19554; RTSPS +1, origin +2, control +3,
# ops listeners +4..+6)
# and SOAK_RTP_PORT (19000; the origin, nodes and multicast take blocks above it).
set -euo pipefail
# everything in main, so that bash has read the whole file before it runs: editing the script
# during a run does not change the run
main() {
cd "$(dirname "$0")/.."

if [ $# -ne 1 ]; then
  echo "usage: scripts/soak.sh DURATION   (e.g. 30m, 10m, 90s)" >&2
  exit 2
fi
secs() { # DURATION -> seconds
  case "$1" in
    *h) echo $((${1%h} * 3600)) ;;
    *m) echo $((${1%m} * 60)) ;;
    *s) echo $((${1%s})) ;;
    *) echo $(($1)) ;;
  esac
}
if ! [[ "$1" =~ ^[0-9]+[hms]?$ ]] || [ "$(secs "$1")" -lt 10 ]; then
  echo "soak.sh: DURATION $1: want e.g. 30m, 10m or 90s (at least 10s)" >&2
  exit 2
fi
dur=$(secs "$1")
interval=${SOAK_INTERVAL:-10}
quiet=${SOAK_QUIET:-30}
cycle=${SOAK_CYCLE:-15}
warmup=${SOAK_WARMUP:-$((dur / 5 < 180 ? dur / 5 : 180))s}
cluster=${SOAK_CLUSTER:-}
mcast=${SOAK_MULTICAST:-1}
port=${SOAK_PORT:-19554}
sport=$((port + 1))
oport=$((port + 2))
cport=$((port + 3))
rtpport=${SOAK_RTP_PORT:-19000}
dir=${SOAK_DIR:-/tmp/meshgw-soak-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$dir/pids" "$dir/churn"
dir=$(cd "$dir" && pwd)
echo "soak.sh: ${1} soak${cluster:+ (cluster)}, everything in $dir" >&2

bg=() # PIDs of background jobs this script started (loops, sampler, readers)
cleanup() {
  touch "$dir/stop"
  for f in "$dir"/pids/*.pid; do
    [ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  for p in "${bg[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

go build -o "$dir/meshgw" ./cmd/meshgw
go build -o "$dir/meshload" ./cmd/meshload
ml="$dir/meshload"

inuse() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $port $sport $oport ${cluster:+$cport}; do
  if inuse "$p"; then
    echo "soak.sh: 127.0.0.1:$p already answers (another run?); set SOAK_PORT" >&2
    exit 1
  fi
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>"$dir/openssl.log" || {
  cat "$dir/openssl.log" >&2
  exit 1
}
# the clip ffmpeg publishes (meshload's synthetic stream has no SPS ffmpeg could read)
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=320x240:rate=25 -t 10 -c:v libx264 -preset ultrafast \
  -g 25 -bf 0 -pix_fmt yuv420p -y "$dir/clip.mp4"
hash=$(echo right-password | "$dir/meshgw" passwd -digest=false soak | sed -n 's/.*password_hash: //p')

# The origin: a camera the gateway pulls (its demo stream), restarted every minute.
printf 'log_level: warn\nrtsp: {listen: 127.0.0.1:%s, rtp_port: %s}\nroutes:\n  demo:\n    source: demo\n' \
  "$oport" "$((rtpport + 800))" >"$dir/origin.yaml"

mcastcfg=""
if [ "$mcast" = 1 ]; then
  mcastcfg=", multicast: {range: 239.255.77.0/24, port: $((rtpport + 900)), ttl: 1}"
fi
# demo pinned to edge in the cluster, so a kill of edge moves the staying reader's stream
pin=""
if [ -n "$cluster" ]; then
  pin=", node: edge"
fi
cat >"$dir/meshgw.yaml" <<YAML
log_level: warn
rtsp: {listen: "127.0.0.1:${port}", rtp_port: ${rtpport}, session_timeout: 20s${mcastcfg}}
rtsps: {listen: 127.0.0.1:${sport}, cert: ${dir}/cert.pem, key: ${dir}/key.pem}
api: {listen: "127.0.0.1:$((port + 4))", pprof: true}
auth:
  max_failures: 3
  failure_window: 1m
  ban_time: 20s
  anonymous:
    read: [demo, pull, "~^load[0-9]*\$"]
    publish: ["~^load[0-9]*\$"]
  users:
    soak:
      password_hash: ${hash}
      read: [secure]
routes:
  demo: {source: demo, srtp: optional${pin}}
  secure: {source: demo}
  pull: {source: "rtsp://127.0.0.1:${oport}/demo", reconnect_min: 200ms, reconnect_max: 1s${pin}}
  "~^load[0-9]*\$": {source: publisher, srtp: optional}
YAML

if [ -n "$cluster" ]; then
  "$dir/meshgw" certs -dir "$dir/pki" -td soak.test far edge >/dev/null
  idn() { printf 'identity: {trust_domain: soak.test, cert: %s/%s.pem, key: %s/%s.key, bundle: %s/ca.pem}\n' "$dir/pki" "$1" "$dir/pki" "$1" "$dir/pki"; }
  { idn control
    printf 'control: {listen: "127.0.0.1:%s", startup_grace: 3s, node_timeout: 5s}\nnode: {name: control, data_address: 127.0.0.1}\n' "$cport"
  } >>"$dir/meshgw.yaml"
  { idn far
    printf 'log_level: warn\nrtsp: {rtp_port: %s}\napi: {listen: "127.0.0.1:%s", pprof: true}\n' "$((rtpport + 300))" "$((port + 5))"
    printf 'node: {name: far, control: "127.0.0.1:%s", data_address: 127.0.0.1, client_networks: [127.0.0.0/8]}\n' "$cport"
  } >"$dir/far.yaml"
  { idn edge
    printf 'log_level: warn\nrtsp: {rtp_port: %s}\napi: {listen: "127.0.0.1:%s", pprof: true}\n' "$((rtpport + 600))" "$((port + 6))"
    printf 'node: {name: edge, control: "127.0.0.1:%s", data_address: 127.0.0.1}\n' "$cport"
  } >"$dir/edge.yaml"
fi

# start NAME ARGS...: run a meshgw process in the background, its PID in pids/NAME.pid
# (the sampler follows it there), its log appended to NAME.log
start() {
  local name=$1
  shift
  "$dir/meshgw" "$@" 2>>"$dir/$name.log" &
  echo $! >"$dir/pids/$name.pid"
}
# kill9 NAME: SIGKILL a process start began and reap it
kill9() {
  local p
  p=$(cat "$dir/pids/$1.pid")
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
waitport() { # PORT NAME: wait up to 20 s for a port
  for _ in $(seq 200); do
    if inuse "$1"; then
      return 0
    fi
    if ! kill -0 "$(cat "$dir/pids/$2.pid")" 2>/dev/null; then
      echo "soak.sh: $2 exited at start:" >&2
      cat "$dir/$2.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "soak.sh: $2 does not listen on $1" >&2
  exit 1
}
event() { echo "$(date +%s%3N) $*" >>"$dir/events.log"; }

start origin run -c "$dir/origin.yaml"
waitport "$oport" origin
procs=(origin)
if [ -n "$cluster" ]; then
  # the nodes attach within the control's startup_grace, so demo and pull start on edge
  start gw control -c "$dir/meshgw.yaml"
  start far node -c "$dir/far.yaml"
  start edge node -c "$dir/edge.yaml"
  waitport "$port" gw
  procs+=(gw far edge)
else
  start gw run -c "$dir/meshgw.yaml"
  waitport "$port" gw
  procs+=(gw)
fi

# goroutines: from the ops listener's goroutine profile (api.pprof); the origin has none (-1)
declare -A apiport=([gw]=$((port + 4)) [far]=$((port + 5)) [edge]=$((port + 6)))
specs=()
for n in "${procs[@]}"; do
  spec="$n=$dir/pids/$n.pid"
  if [ -n "${apiport[$n]:-}" ]; then
    spec+=",http://127.0.0.1:${apiport[$n]}/debug/pprof/"
  fi
  specs+=("$spec")
done
echo start >"$dir/phase"
"$ml" sample -dir "$dir" -interval "${interval}s" -phase "$dir/phase" "${specs[@]}" 2>"$dir/sampler.log" &
sampler=$!
bg+=("$sampler")

# The reader that stays: long enough to cover start, churn, the stop and the quiet end.
url=rtsp://127.0.0.1:$port
surl=rtsps://127.0.0.1:$sport
stay=$((quiet + dur + cycle + 40 + quiet)) # a round ends within cycle+35 s of the stop
"$ml" -url "$url/demo" -readers 1 -tracks all -warmup 0 -floor=false -duration "${stay}s" -json \
  >"$dir/staying.json" 2>"$dir/staying.log" &
staying=$!
bg+=("$staying")
sleep "$quiet"

# loop NAME CMD...: run CMD again and again until the churn stops; one line per round in churn/NAME.log
loop() {
  local name=$1
  shift
  while [ ! -e "$dir/stop" ]; do
    local t0 rc=0
    t0=$(date +%s)
    timeout -k 5 $((cycle + 30)) "$@" >>"$dir/churn/$name.out" 2>&1 || rc=$?
    echo "$t0 $(($(date +%s) - t0)) $rc" >>"$dir/churn/$name.log"
    sleep 1
  done
}
mlr=(-floor=false -warmup 1s -duration "${cycle}s" -setup-parallel 4 -timeout 5s)
ff=(ffmpeg -nostdin -hide_banner -loglevel error -timeout 5000000)
ffout=(-t "$cycle" -c copy -f null -)
loops=()
churn() { loop "$@" & loops+=($!); bg+=($!); }

echo churn >"$dir/phase"
event churn-start
churn ml-publish-udp "$ml" -url "$url/load" -publish -readers 4 "${mlr[@]}"
churn ml-tcp-pull "$ml" -url "$url/pull" -transport tcp -readers 4 "${mlr[@]}"
churn ml-srtp-demo "$ml" -url "$surl/demo" -tls-ca "$dir/cert.pem" -srtp -readers 3 "${mlr[@]}"
churn ff-udp-pull "${ff[@]}" -rtsp_transport udp -i "$url/pull" "${ffout[@]}"
churn ff-publish-tcp ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$dir/clip.mp4" -t "$cycle" -c copy -f rtsp -rtsp_transport tcp "$url/load1"
churn ff-tcp-load1 "${ff[@]}" -rtsp_transport tcp -i "$url/load1" "${ffout[@]}"
churn ff-srtp-demo "${ff[@]}" -i "$surl/demo" "${ffout[@]}"
if [ "$mcast" = 1 ]; then
  churn ff-mcast-demo "${ff[@]}" -rtsp_transport udp_multicast -i "$url/demo" "${ffout[@]}"
fi
"$ml" guess -url "$surl/secure" -tls-ca "$dir/cert.pem" -from 127.0.0.2 -every 2s >"$dir/churn/guess.out" 2>&1 &
guess=$!
bg+=("$guess")

# restarts: the origin every 60 s, edge every 120 s (cluster); each kill is an event
t0=$(date +%s)
next_origin=$((t0 + 60))
next_edge=$((t0 + 120))
while [ $(($(date +%s) - t0)) -lt "$dur" ]; do
  now=$(date +%s)
  if [ "$now" -ge "$next_origin" ]; then
    kill9 origin
    start origin run -c "$dir/origin.yaml"
    echo "$now origin" >>"$dir/restarts.log"
    next_origin=$((now + 60))
  fi
  if [ -n "$cluster" ] && [ "$now" -ge "$next_edge" ]; then
    event kill edge
    kill9 edge
    sleep 2
    start edge node -c "$dir/edge.yaml"
    event restart edge
    next_edge=$((now + 120))
  fi
  sleep 1
done

# quiet: stop the churn, let every round end, then sample the settled gateway
touch "$dir/stop"
kill -INT "$guess" 2>/dev/null || true
wait "$guess" 2>/dev/null || true
for p in "${loops[@]}"; do
  wait "$p" 2>/dev/null || true
done
event churn-end
echo quiet >"$dir/phase"
q0=$(date +%s)
wait "$staying" || echo "soak.sh: the staying reader exited with status $?" >&2
left=$((quiet - ($(date +%s) - q0)))
if [ "$left" -gt 0 ]; then
  sleep "$left"
fi
sleep "$interval" # one more sample after the settle
kill -INT "$sampler"
wait "$sampler" 2>/dev/null || true

echo "soak.sh: churn rounds (ok / failed; a round fails e.g. while a route's source restarts):" >&2
status=0
for f in "$dir"/churn/*.log; do
  n=$(grep -c . "$f" || true)
  bad=$(awk '$3 != 0' "$f" | grep -c . || true)
  printf '  %-16s %4d ok %4d failed\n' "$(basename "$f" .log)" $((n - bad)) "$bad" >&2
  if [ "$n" -gt 0 ] && [ "$bad" -eq "$n" ]; then
    echo "soak.sh: every round of $(basename "$f" .log) failed; last output:" >&2
    tail -5 "$dir/churn/$(basename "$f" .log).out" >&2
    status=1
  fi
done
echo "  guesses: $(cat "$dir/churn/guess.out")" >&2
echo "  restarts: origin $(grep -c . "$dir/restarts.log" 2>/dev/null || echo 0)${cluster:+, edge $(grep -c 'kill edge' "$dir/events.log")}" >&2

csvs=()
for n in "${procs[@]}"; do
  csvs+=("$dir/$n.csv")
done
# work moves between the control and the nodes: their series are judged as one sum
sum=()
if [ -n "$cluster" ]; then
  sum=(-sum gw,far,edge)
fi
"$ml" verdict -warmup "$warmup" -max-silence "${SOAK_MAX_SILENCE:-2s}" -rss-slope "${SOAK_RSS_SLOPE:-1024}" -heap-slope "${SOAK_HEAP_SLOPE:-64}" "${sum[@]}" -reader "$dir/staying.json" \
  -events <(grep -E ' (kill|restart) ' "$dir/events.log" || true) "${csvs[@]}" | tee "$dir/verdict.txt" || status=1
echo "soak.sh: CSVs, logs and verdict.txt in $dir" >&2
exit "$status"
}
main "$@"
