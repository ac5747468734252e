#!/usr/bin/env bash
# scripts/test.sh - the project's full test command (see README.md).
#
# Steps, in order: gofmt, go mod tidy -diff, go vet, staticcheck, go build, go test (all
# packages, -v, counted), go test -race (rtp, rtsp, fec), `meshgw check` for every
# configs/*.yaml, and bounded fuzzing of every Fuzz target (FUZZTIME, default
# 15s each).  Every step runs even when an earlier one failed; the script
# prints a summary and exits non-zero if any step failed.
#
# Environment:
#   MESHGW_REQUIRE_PEERS=1  missing peers (and staticcheck) are errors, not skips
#   FUZZTIME=15s            -fuzztime per fuzz target (0 or "off" skips fuzzing)
#   GOTEST_TIMEOUT=30m      -timeout for the go test runs
set -euo pipefail

cd "$(dirname "$0")/.."
if [ -d /usr/local/go/bin ]; then export PATH="/usr/local/go/bin:$PATH"; fi
PATH="$PATH:$(go env GOPATH)/bin"
export PATH

FUZZTIME=${FUZZTIME:-15s}
GOTEST_TIMEOUT=${GOTEST_TIMEOUT:-30m}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=()
t_start=$(date +%s)

section() { printf '\n==== %s ====\n' "$*"; }
fail() { echo "FAIL: $*"; failed+=("$*"); }

section "gofmt -l ."
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
  echo "$unformatted"
  fail "gofmt (files above need gofmt -w)"
else
  echo "ok"
fi

section "go mod tidy -diff"
# go.mod and go.sum must be what `go mod tidy` makes of the imports (a module imported directly is
# not "// indirect", nothing unused is listed); the diff shows what to change.
go mod tidy -diff || fail "go mod tidy -diff (run go mod tidy and commit go.mod and go.sum)"

section "go vet ./..."
go vet ./... || fail "go vet"

section "staticcheck ./..."
if command -v staticcheck >/dev/null 2>&1; then
  staticcheck -version
  staticcheck ./... || fail "staticcheck"
elif [ "${MESHGW_REQUIRE_PEERS:-}" = 1 ]; then
  fail "staticcheck not on PATH (required because MESHGW_REQUIRE_PEERS=1)"
else
  echo "skipped: staticcheck not on PATH"
fi

section "go build ./..."
go build ./... || fail "go build"

section "go test -count=1 -v ./..."
log="$tmp/gotest.log"
set +e
go test -count=1 -v -timeout "$GOTEST_TIMEOUT" ./... 2>&1 | tee "$log"
test_rc=${PIPESTATUS[0]}
set -e
[ "$test_rc" -eq 0 ] || fail "go test (exit $test_rc)"

section "go test -race ./rtp/... ./rtsp/... ./fec/... ./gateway/..."
race_pkgs=()
for d in rtp rtsp fec gateway; do [ -d "$d" ] && race_pkgs+=("./$d/..."); done
if [ ${#race_pkgs[@]} -gt 0 ]; then
  go test -race -count=1 -timeout "$GOTEST_TIMEOUT" "${race_pkgs[@]}" || fail "go test -race"
else
  echo "skipped: no rtp/ or rtsp/ directory yet"
fi

section "meshgw check -c configs/*.yaml"
if [ -d cmd/meshgw ]; then
  if go build -o "$tmp/meshgw" ./cmd/meshgw; then
    shopt -s nullglob
    cfgs=(configs/*.yaml)
    shopt -u nullglob
    [ ${#cfgs[@]} -gt 0 ] || echo "no configs/*.yaml"
    for f in "${cfgs[@]}"; do
      echo "-- $f"
      "$tmp/meshgw" check -c "$f" || fail "meshgw check -c $f"
    done
  else
    fail "go build ./cmd/meshgw"
  fi
else
  echo "skipped: ./cmd/meshgw does not exist yet"
fi

section "fuzzing (FUZZTIME=$FUZZTIME per target)"
if [ "$FUZZTIME" = 0 ] || [ "$FUZZTIME" = off ]; then
  echo "skipped: FUZZTIME=$FUZZTIME"
elif go test -list '^Fuzz' ./... >"$tmp/fuzzlist" 2>&1; then
  # go test -list prints the matching names of a package, then its "ok pkg" line.
  awk '/^Fuzz/ { n[c++] = $1; next }
       /^ok[ \t]/ { for (i = 0; i < c; i++) print $2, n[i]; c = 0; next }
       { c = 0 }' "$tmp/fuzzlist" >"$tmp/fuzztargets"
  if [ ! -s "$tmp/fuzztargets" ]; then echo "no Fuzz targets"; fi
  while read -r pkg name; do
    echo "-- $pkg $name"
    # The fuzz engine itself sometimes ends a run with a bare "context deadline exceeded" when
    # its time runs out while a worker is busy (no input failed, none was written). That run is
    # repeated once; a real finding prints "Failing input written" and fails at once.
    if ! go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg" </dev/null 2>&1 | tee "$tmp/fuzzout"; then
      if grep -q "context deadline exceeded" "$tmp/fuzzout" && ! grep -q "Failing input written" "$tmp/fuzzout"; then
        echo "fuzz engine deadline without a finding; running $name once more"
        go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" "$pkg" </dev/null || fail "fuzz $pkg $name"
      else
        fail "fuzz $pkg $name"
      fi
    fi
  done <"$tmp/fuzztargets"
else
  cat "$tmp/fuzzlist"
  fail "go test -list '^Fuzz' ./..."
fi

section "summary"
grep -E '^(ok|FAIL|\?)[[:space:]]' "$log" || true
grep -E '^--- FAIL: ' "$log" || true
passed=$(grep -cE '^--- PASS: ' "$log" || true)
failed_n=$(grep -cE '^--- FAIL: ' "$log" || true)
skipped=$(grep -cE '^--- SKIP: ' "$log" || true)
echo "tests: $passed passed, $failed_n failed, $skipped skipped"
echo "scripts/test.sh: $(($(date +%s) - t_start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED step: %s\n' "${failed[@]}"
  exit 1
fi
echo "all steps passed"
