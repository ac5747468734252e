// Package e2e holds meshgw's end-to-end tests: a real gateway driven by real third-party peers
// (ffmpeg, ffprobe, GStreamer, a GstRtspServer camera) and by independent Go RTSP clients. Tests
// that need a peer skip when it is missing, and fail instead under MESHGW_REQUIRE_PEERS=1.
package e2e
