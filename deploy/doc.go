// Package deploy holds meshgw's Kubernetes manifests (the *.yaml files in
// this directory and in spire/) and the tests that check them, and the
// repository's Dockerfile, without a cluster or a container engine: every
// manifest is decoded strictly into the Kubernetes API types, so a
// misspelled field fails `go test` instead of being dropped by the API
// server, and the Dockerfile is parsed with BuildKit's own parser. See
// README.md for how to deploy.
//
// The package has no code of its own; this file only gives it a name that
// `go build ./...` and `go vet ./...` can list.
package deploy
