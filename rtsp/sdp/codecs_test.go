package sdp

import (
	"slices"
	"testing"
)

const codecsSDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
	"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n" +
	"m=video 0 RTP/AVP 98\r\na=rtpmap:98 H265/90000\r\n" +
	"m=video 0 RTP/AVP 33\r\n" +
	"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/48000/2\r\na=fmtp:97 streamtype=5; profile-level-id=15; mode=AAC-hbr; config=1190; sizelength=13; indexlength=3; indexdeltalength=3\r\n"

func TestTrackCodecs(t *testing.T) {
	got := TrackCodecs([]byte(codecsSDP))
	want := []string{"H264", "H265", "MPEG-TS", "MPEG-4 Audio"}
	if !slices.Equal(got, want) {
		t.Errorf("TrackCodecs = %q, want %q", got, want)
	}
	if got := TrackCodecs([]byte("not an SDP")); got != nil {
		t.Errorf("TrackCodecs(garbage) = %q, want nil", got)
	}
}

// FuzzTrackCodecs: descriptions come from upstream servers; any bytes give an answer, and one
// that Parse accepts gives one codec per track.
func FuzzTrackCodecs(f *testing.F) {
	f.Add([]byte(codecsSDP))
	f.Add([]byte("v=0\r\nm=video 0 RTP/AVP 96\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		codecs := TrackCodecs(b)
		if _, tracks, err := Parse(b); err == nil && len(codecs) != len(tracks) {
			t.Fatalf("%d codecs for %d tracks", len(codecs), len(tracks))
		}
	})
}
