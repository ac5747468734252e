// Package keyframe finds, in RTP packets of H.264, H.265 and MPEG-TS
// streams, the packets where a decoder can start: the parameter sets or
// first slice of an IDR/IRAP picture, or an MPEG-TS packet flagged random
// access.
//
// A source switch (rtp/backup) waits for such a packet so that readers'
// decoders resume on a picture they can decode instead of showing garbage
// until the next keyframe. The packets are untrusted: any bytes give an
// answer, never a panic.
package keyframe
