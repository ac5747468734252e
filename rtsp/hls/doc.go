// Package hls serves routes over HTTP as HLS: Low-Latency HLS (fMP4 parts, blocking playlist
// reloads), plain fMP4 HLS or MPEG-TS HLS, so browsers (hls.js, native HLS) and HLS players can
// watch a route without RTSP.
//
// The muxing is gohlslib's (github.com/bluenviron/gohlslib/v2) and the RTP depacketizing
// gortsplib's, which is why the package lives under rtsp/ (only the rtsp tree imports
// gortsplib). A route's muxer is started by the first HLS request for it and stopped after
// hls.idle_stop without requests. A muxer is one reader of the route, opened through the same
// rtsp.Handler the RTSP front door uses, with its tracks taken from the local node's hubs like an
// interleaved (TCP) reader's: the hub hands packets to a queueing sink and never waits, and the
// muxer's own goroutine depacketizes and muxes them.
//
// Requests pass the same rules as RTSP reads (access.Policy: address allow lists, Basic
// credentials, the route's read permission, bans, the HTTP callout).
package hls
