#!/usr/bin/env bash
# scripts/perf.sh - measures every figure of docs/PERFORMANCE.md in one run.
#
# usage: scripts/perf.sh [SECONDS per load run, default 20]
#
# Runs the data-plane benchmarks (with -benchmem: allocations per packet) and then the load
# scenarios through scripts/load.sh, each of which starts its own gateway, loads it with
# cmd/meshload, reads the gateway's CPU from /proc and compares it with a raw sendmmsg floor
# measured on the same reader sockets in the same run. Takes about 3 minutes + 14 x SECONDS x 2.
# Run it on an otherwise idle machine: the ratios hold under noise, absolute figures do not.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}s

section() { printf '\n== %s\n' "$*"; }

section "benchmarks: ns per packet in, 0 allocs/op expected (rtp)"
go test -run '^$' -bench 'HubFanout|UDPFanout|FloorSendmmsg|Interleaved|Relay' -benchmem -count 1 ./rtp

section "100 UDP readers of a 4 Mbit/s publisher, 4 MiB reader buffers: CPU vs floor, latency"
scripts/load.sh -readers 100 -duration "$secs"

section "100 UDP readers, default (208 KiB) reader buffers, no pacing"
scripts/load.sh -readers 100 -duration "$secs" -rcvbuf 0

section "100 UDP readers, default reader buffers, pacing: 3"
LOAD_PACING=3 scripts/load.sh -readers 100 -duration "$secs" -rcvbuf 0

section "1000 UDP readers, 4 MiB reader buffers"
scripts/load.sh -readers 1000 -duration "$secs"

section "ingest: 2 publishers x 50 Mbit/s over UDP, one reader each"
scripts/load.sh -publishers 2 -bitrate 50000000 -readers 2 -duration "$secs" -floor=false

section "10 published routes, 100 UDP readers spread over them (loss per route and track)"
scripts/load.sh -routes 10 -readers 100 -duration "$secs"

section "100 routes pulled from one origin serving one clip, one UDP reader each"
LOAD_ORIGIN=1 scripts/load.sh -routes 100 -readers 100 -duration "$secs"

section "same 100 pulls running, no readers: RSS"
LOAD_ORIGIN=1 scripts/load.sh -routes 100 -readers 0 -duration "$secs"

section "100 TCP-interleaved readers"
scripts/load.sh -readers 100 -transport tcp -duration "$secs"

section "100 UDP readers on a far node (control + node, relay)"
LOAD_CLUSTER=1 scripts/load.sh -readers 100 -duration "$secs"

section "SRTP vs plain: 100 UDP readers, plain and LOAD_SRTP=1 (RTSPS, SDES keys, gateway encrypts) alternating twice"
for i in 1 2; do
  printf -- '-- plain %d\n' "$i"
  scripts/load.sh -readers 100 -duration "$secs"
  printf -- '-- srtp %d\n' "$i"
  LOAD_SRTP=1 scripts/load.sh -readers 100 -duration "$secs"
done
