// Package record records routes continuously to fragmented MP4 files: one file per segment
// (routes.*.record.segment long, starting at a keyframe), each an initialization section followed
// by one fragment (moof+mdat) per part (record.part), written as soon as the part is complete, so
// a crash loses at most the part being collected.
//
// A recorder is a reader of its route that never leaves, opened through the same rtsp.Handler as
// RTSP readers and taking each track from the local node's hub with a never-blocking queue sink
// (rtsp/depack.Queue); depacketizing (gortsplib) and writing (mediacommon/v2's fMP4 writer) run on
// the recorder's goroutine. A failure to write (disk full, a read-only directory) ends the file
// and is retried, while the route goes on serving its readers.
package record
