#!/usr/bin/env bash
# scripts/spire.sh - build the SPIRE server and agent used by the Workload API
# test of gateway/identity, and print the directory that holds them.
#
#   bin=$(scripts/spire.sh) && MESHGW_SPIRE_BIN=$bin go test ./gateway/identity/
#
# SPIRE is not part of meshgw: it is built on demand in a throwaway module
# outside the repository, so neither its recipe nor its ~300 MB of binaries
# ever reach go.mod or git.  `go install spire@v1.13.0` cannot be used: the
# module proxy refuses the @v/list lookup that go install makes for its
# deprecation check.  A build takes ~10 minutes (download plus cgo/sqlite3
# compile) and needs gcc; when both binaries already exist nothing is built.
#
# Environment:
#   SPIRE_VERSION=v1.13.0                       the only version the proxy serves
#   MESHGW_SPIRE_CACHE=$HOME/.cache/meshgw      cache root; binaries land in
#                                               $MESHGW_SPIRE_CACHE/spire-$SPIRE_VERSION/bin
#
# Only the bin directory goes to stdout; progress goes to stderr.
set -euo pipefail

if [ -d /usr/local/go/bin ]; then export PATH="/usr/local/go/bin:$PATH"; fi

version=${SPIRE_VERSION:-v1.13.0}
cache=${MESHGW_SPIRE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshgw}
root="$cache/spire-$version"
bin="$root/bin"

have() { [ -x "$bin/spire-server" ] && [ -x "$bin/spire-agent" ]; }

if have; then
	echo "$bin"
	exit 0
fi

command -v go >/dev/null || { echo "spire.sh: go not found in PATH" >&2; exit 1; }
command -v gcc >/dev/null || { echo "spire.sh: gcc not found; SPIRE's sqlite3 datastore needs cgo" >&2; exit 1; }

mkdir -p "$root"
# Two concurrent test runs must not both spend ten minutes building into the
# same directory; the second waits and then finds the binaries.
if command -v flock >/dev/null; then
	exec 9>"$root/.lock"
	flock 9
	if have; then
		echo "$bin"
		exit 0
	fi
fi

src="$root/src"
rm -rf "$src"
mkdir -p "$src"
cd "$src"

# GOWORK/GOFLAGS from the caller's environment must not leak into the
# throwaway module (a go.work or -mod=vendor would break it).
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=1
# Only these two SPIRE dependencies are missing from sum.golang.org (lookup
# answers 404); every other module is still verified against the checksum DB.
export GONOSUMDB=github.com/aws/aws-sdk-go-v2/service/acmpca,github.com/aws/aws-sdk-go-v2/service/rolesanywhere

cat >go.mod <<EOF
module meshgw.invalid/spirebuild

go 1.24.6

require github.com/spiffe/spire $version
EOF
cat >tools.go <<'EOF'
//go:build tools

// Package spirebuild only pins SPIRE's commands so that go mod tidy keeps
// every module they need.
package spirebuild

import (
	_ "github.com/spiffe/spire/cmd/spire-agent"
	_ "github.com/spiffe/spire/cmd/spire-server"
)
EOF

start=$(date +%s)
echo "spire.sh: resolving SPIRE $version modules in $src" >&2
go mod tidy >&2
echo "spire.sh: building spire-server and spire-agent (several minutes)" >&2
# Build into a scratch directory and rename, so an interrupted build never
# leaves binaries that the check above would take for a finished one.
rm -rf "$root/bin.tmp"
mkdir -p "$root/bin.tmp"
go build -trimpath -o "$root/bin.tmp/" github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent >&2
rm -rf "$bin"
mv "$root/bin.tmp" "$bin"
echo "spire.sh: built in $(($(date +%s) - start))s: $("$bin/spire-server" --version 2>&1 | head -1)" >&2
echo "$bin"
