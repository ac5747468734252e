#!/usr/bin/env bash
# scripts/measure_core.sh - reproduces the core gateway figures of the README:
#   1. time from `meshgw` start to the first decoded frame of ffmpeg on /demo (and ffprobe's run),
#   2. packets/s and gateway CPU for one 4 Mbit/s H.264 stream published over TCP and read by
#      N UDP readers (ffmpeg -c copy), from /proc/<pid>/stat and /proc/net/snmp,
#   3. gateway RSS at idle and under that load.
# usage: scripts/measure_core.sh [READERS=10] [SECONDS=20]
# Needs ffmpeg/ffprobe. Runs only against 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
readers=${1:-10}
secs=${2:-20}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
hz=$(getconf CLK_TCK)
port=$((20000 + RANDOM % 20000))
rtpport=$((port + 2 - port % 2 + 2))

go build -o "$tmp/meshgw" ./cmd/meshgw
cat >"$tmp/cfg.yaml" <<YAML
log_level: warn
rtsp:
  listen: 127.0.0.1:$port
  rtp_port: $rtpport
routes:
  demo:
    source: demo
  pub:
    source: publisher
YAML

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# Packets the gateway sends are counted on the wire by their source port: system-wide counters
# would include whatever else runs on the machine.
count_out() { timeout $(($1 + 5)) tshark -i lo -f "udp src port $rtpport" -a duration:"$1" -q -z io,stat,0 2>/dev/null |
  awk -F'|' '/<>/ { gsub(/ /, "", $3); print $3 }'; }

# 1. start to first frame
t0=$(date +%s.%N)
"$tmp/meshgw" run -c "$tmp/cfg.yaml" 2>"$tmp/gw.log" &
gw=$!
pids+=("$gw")
until ffmpeg -v quiet -rtsp_transport udp -i "rtsp://127.0.0.1:$port/demo" -frames:v 1 -f null - 2>/dev/null; do
  sleep 0.05
done
t1=$(date +%s.%N)
t2=$(date +%s.%N)
ffprobe -v error -show_entries stream=codec_name -of compact "rtsp://127.0.0.1:$port/demo" >/dev/null
t3=$(date +%s.%N)
t4=$(date +%s.%N)
ffmpeg -v quiet -rtsp_transport udp -i "rtsp://127.0.0.1:$port/demo" -frames:v 1 -f null -
t5=$(date +%s.%N)
printf 'start -> first frame (ffmpeg, cold start): %.2f s\n' "$(echo "$t1 - $t0" | bc)"
printf 'ffprobe on demo (warm): %.2f s\n' "$(echo "$t3 - $t2" | bc)"
printf 'connect -> first frame (ffmpeg, warm): %.2f s\n' "$(echo "$t5 - $t4" | bc)"
sleep 2
printf 'RSS idle (demo route live, no readers): %d KiB\n' "$(rss_kb "$gw")"

# 2. a 4 Mbit/s stream with N UDP readers
ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=25 -t 10 -c:v libx264 -preset veryfast -g 25 \
  -b:v 4M -minrate 4M -maxrate 4M -bufsize 1M -x264-params nal-hrd=cbr -pix_fmt yuv420p "$tmp/4m.mp4"
ffmpeg -v error -re -stream_loop -1 -i "$tmp/4m.mp4" -c copy -f rtsp -rtsp_transport tcp "rtsp://127.0.0.1:$port/pub" &
pids+=("$!")
sleep 2
for _ in $(seq "$readers"); do
  ffmpeg -v error -rtsp_transport udp -i "rtsp://127.0.0.1:$port/pub" -c copy -f null - &
  pids+=("$!")
done
sleep 3
count_out "$secs" >"$tmp/count" &
cnt=$!
sleep 1 # tshark starts capturing
c0=$(cpu_ticks "$gw"); w0=$(date +%s.%N)
wait "$cnt"
c1=$(cpu_ticks "$gw"); w1=$(date +%s.%N)
wall=$(echo "$w1 - $w0" | bc)
cpu=$(echo "($c1 - $c0) / $hz" | bc -l)
pps=$(echo "$(cat "$tmp/count") / $secs" | bc -l)
printf 'readers: %d, window %.1f s\n' "$readers" "$wall"
printf 'packets sent by the gateway to UDP readers: %.0f /s (%.0f /s per reader)\n' "$pps" "$(echo "$pps / $readers" | bc -l)"
printf 'gateway CPU: %.1f %% of one core, %.2f us per delivered packet\n' "$(echo "100 * $cpu / $wall" | bc -l)" "$(echo "1000000 * $cpu / ($pps * $wall)" | bc -l)"
printf 'RSS under load: %d KiB\n' "$(rss_kb "$gw")"
