#!/usr/bin/env bash
# hlsload.sh: N HLS viewers made of curl loops, and the gateway's CPU while they watch.
#
#   scripts/hlsload.sh BASE_URL ROUTE CLIENTS SECONDS [GATEWAY_PID]
#   scripts/hlsload.sh http://127.0.0.1:8888 demo 100 30 $(pgrep -n meshgw)
#
# Each viewer fetches the route's multivariant playlist and init section once, then every second
# the media playlist and the newest whole segment it lists (what a plain HLS player does at
# 1-second segments). With GATEWAY_PID the script prints the gateway's CPU time over the run
# (utime+stime from /proc) and the per-viewer figure; failed fetches are counted.
set -euo pipefail
base=${1:?base URL}; route=${2:?route}; n=${3:?clients}; secs=${4:?seconds}; pid=${5:-}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

viewer() {
	local i=$1 end=$((SECONDS + secs)) ok=0 fail=0 bytes=0 media pl seg b
	media=$(curl -fsS "$base/$route/index.m3u8" | grep -m1 -E '_stream\.m3u8$' || true)
	if [ -z "$media" ]; then echo "0 1 0" >"$tmp/$i"; return; fi
	while [ $SECONDS -lt $end ]; do
		if pl=$(curl -fsS "$base/$route/$media"); then
			seg=$(printf '%s\n' "$pl" | grep -E '_seg[0-9]+\.(mp4|ts)$' | tail -1)
			if b=$(curl -fsS -o /dev/null -w '%{size_download}' "$base/$route/$seg"); then
				ok=$((ok + 1)); bytes=$((bytes + b))
			else fail=$((fail + 1)); fi
		else fail=$((fail + 1)); fi
		sleep 1
	done
	echo "$ok $fail $bytes" >"$tmp/$i"
}

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
[ -n "$pid" ] && c0=$(cpu "$pid")
t0=$(date +%s.%N)
for i in $(seq 1 "$n"); do viewer "$i" & done
wait
t1=$(date +%s.%N)
read -r ok fail bytes < <(cat "$tmp"/* | awk '{o+=$1; f+=$2; b+=$3} END {print o, f, b}')
wall=$(echo "$t1 - $t0" | bc -l)
printf 'viewers %d, %.1f s: %d segments fetched (%.1f MB), %d failed fetches\n' "$n" "$wall" "$ok" "$(echo "$bytes/1000000" | bc -l)" "$fail"
if [ -n "$pid" ]; then
	c1=$(cpu "$pid")
	cpus=$(echo "($c1 - $c0) / $hz" | bc -l)
	printf 'gateway CPU %.2f s over %.1f s = %.1f%% of one core; %.3f%% of a core per viewer\n' \
		"$cpus" "$wall" "$(echo "100 * $cpus / $wall" | bc -l)" "$(echo "100 * $cpus / $wall / $n" | bc -l)"
fi
