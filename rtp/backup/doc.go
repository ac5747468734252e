// Package backup carries a hot backup source's packet path: a Selector
// stands between the two legs of a backed-up source (the primary and its
// backup, both running) and the stream's hubs, and decides per packet which
// leg's packets reach the hubs.
//
// In switch mode it forwards the primary, and the backup while the primary
// stalls, each change at the new leg's keyframe (rtp/keyframe) so readers'
// decoders resume on a picture they can decode; in merge mode it merges both
// legs as SMPTE 2022-7 legs; auto mode compares the legs and picks one of
// the two. The hubs keep the readers' SSRC/seq/timestamp line continuous
// across switches.
//
// Starting and stopping the legs' sources, and laying out the stream's
// hubs, is the node's (gateway/node); this package is what runs per packet.
package backup
