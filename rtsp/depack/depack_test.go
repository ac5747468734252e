package depack

import (
	"errors"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtsp/demo"
)

const g711SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

func TestFormats(t *testing.T) {
	c, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	fs, err := Formats(c.SDP())
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		t.Fatalf("%d formats", len(fs))
	}
	v, err := New(0, fs[0])
	if err != nil || !v.IsVideo() {
		t.Fatalf("H.264 track: %v", err)
	}
	if a, err := New(1, fs[1]); err != nil || a.IsVideo() {
		t.Fatalf("AAC track: %v", err)
	}
	// an H.264 access unit in one packet comes out at its marker bit
	au, err := v.Decode(&rtp.Packet{Header: rtp.Header{Marker: true, Timestamp: 9, PayloadType: 96}, Payload: []byte{0x65, 1, 2, 3}})
	if err != nil || len(au) != 1 || au[0][0] != 0x65 {
		t.Fatalf("decode: %v %v", au, err)
	}
	fs, err = Formats([]byte(g711SDP))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(0, fs[0]); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("G.711: %v, want ErrUnsupported", err)
	}
	if _, err := New(0, &format.MPEG4Audio{PayloadTyp: 97}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("AAC without config: %v", err)
	}
}

// FuzzFormats: any description gives formats or an error, and every format a depacketizer or an
// error, without a panic; the depacketizers take any packet.
func FuzzFormats(f *testing.F) {
	c, err := demo.Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.SDP(), []byte{0x80, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x7c, 0x85, 1})
	f.Add([]byte(g711SDP), []byte{})
	f.Fuzz(func(t *testing.T, sdp, pkt []byte) {
		fs, err := Formats(sdp)
		if err != nil {
			return
		}
		for i, fm := range fs {
			if fm == nil {
				continue
			}
			d, err := New(i, fm)
			if err != nil {
				continue
			}
			var p rtp.Packet
			if p.Unmarshal(pkt) == nil {
				_, _ = d.Decode(&p)
			}
		}
	})
}
