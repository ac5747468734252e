// Package fec implements SMPTE ST 2022-1 (Pro-MPEG Code of Practice #3
// release 2) forward error correction for RTP: an encoder that produces the
// column and row FEC streams for a media stream, and a decoder that rebuilds
// lost media packets from them.
//
// Wire format in brief: media packets (one SSRC, consecutive sequence
// numbers) are laid row by row into a matrix of L columns and D rows.  Each
// column (D packets spaced L apart) and, in 2D mode, each row (L consecutive
// packets) gets one FEC packet: a 12-byte RTP header whose P, X, CC and M
// bits carry the XOR of the protected packets' bits, a 16-byte FEC header
// (SNBase, length/PT/timestamp recovery, D bit for column/row, offset, NA),
// and the XOR of everything after the protected packets' fixed 12-byte
// headers (CSRCs, extension, payload, padding), zero-extended to the longest.
// Column FEC travels as its own RTP stream to the media port + 2, row FEC to
// the media port + 4.  One lost packet per column or row is rebuilt; in 2D
// the two directions feed each other until nothing more can be recovered.
//
// The FEC header is parsed and written by hand: no maintained Go library
// implements 2022-1, and generic RTP parsers must not be used on FEC packets
// because their P/X/CC bits are recovery values, not real padding, extension
// or CSRC indications.
//
// Everything here is a pure function of the packets pushed in: no I/O, no
// goroutines, no global state, and no allocation per packet once the
// internal buffers have grown to the stream's packet size.  Encoder and
// Decoder are not safe for concurrent use.
package fec
