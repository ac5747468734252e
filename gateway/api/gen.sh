#!/bin/sh
# Regenerates meshgw.pb.go and meshgw_grpc.pb.go from meshgw.proto.
#
# Tool versions (the committed files were made with exactly these; TestGeneratedUpToDate
# compares byte for byte when they are on PATH):
#   protoc              libprotoc 3.21.12 (Debian 12: apt-get install protobuf-compiler)
#   protoc-gen-go       v1.36.12 (google.golang.org/protobuf, the version in go.mod)
#   protoc-gen-go-grpc  v1.5.1   (google.golang.org/grpc/cmd/protoc-gen-go-grpc)
#
# The proxy refuses version lists, so `go install x@ver` fails; build the plugins in a
# throwaway module instead:
#   d=$(mktemp -d) && cd "$d" && go mod init tools &&
#   go get google.golang.org/protobuf@v1.36.12 google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1 &&
#   go build -o "$HOME/go/bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go &&
#   go build -o "$HOME/go/bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
#
# Usage: gen.sh [output dir]   (default: this directory)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
cd "$here"
protoc --proto_path=. \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	meshgw.proto
