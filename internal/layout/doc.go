// Package layout holds no code. Its test keeps the package graph as docs/ARCHITECTURE.md draws
// it: imports point one way (cmd -> gateway -> rtsp -> rtp -> fec), gortsplib stays under rtsp/,
// the node's wiring does not pull in the RTSP server, and the architecture's package map names
// every package of the repository. The rules are checked with `go list`, so a violation fails
// `go test ./...` with the package and import that break them instead of surfacing later as an
// import cycle or a slow drift of the documentation.
package layout
