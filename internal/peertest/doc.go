// Package peertest is meshgw's end-to-end test harness: helpers for tests
// that drive real third-party programs (ffmpeg, ffprobe, GStreamer,
// GstRtspServer, tshark, socat, iproute2, headless Chromium driven with
// chromedp) against the gateway.
//
// Every helper takes a testing.TB and registers its own cleanup, so a test
// never leaks processes, temporary files or network namespaces.  When a peer
// is missing the test is skipped, unless MESHGW_REQUIRE_PEERS=1 is set (as
// in CI), in which case it fails.
//
// The package has no package-level mutable state; shared, cached resources
// (such as generated media clips) live in values that tests pass around,
// see Media.
//
// Only loopback addresses and the private 10.99.x.y addresses of the
// namespaces made by NewNetns are ever used as traffic targets.
package peertest
