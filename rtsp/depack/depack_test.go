package depack

import (
	"errors"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"go.uber.org/goleak"

	mrtp "github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp/demo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

// TestQueue: a full queue drops and counts, a closed one releases what it held and what comes
// after (a delivery may race with RemoveSink).
func TestQueue(t *testing.T) {
	pool := mrtp.NewPool()
	q := NewQueue(4)
	s := q.Sink(1)
	for i := 0; i < 10; i++ {
		s.DeliverRTP(pool.Get(12))
	}
	if q.In() != 4 || q.Dropped() != 6 {
		t.Fatalf("in %d dropped %d, want 4 and 6", q.In(), q.Dropped())
	}
	select {
	case <-q.Wake():
	default:
		t.Fatal("no wake-up after a push")
	}
	got := q.Take(make([]Queued, 0, 3))
	if len(got) != 3 || got[0].Track != 1 {
		t.Fatalf("took %d", len(got))
	}
	for _, e := range got {
		e.P.Release()
	}
	q.Close()
	s.DeliverRTP(pool.Get(12))
	s.DeliverRTCP(pool.Get(12))
	if len(q.Take(make([]Queued, 0, 8))) != 0 || q.Dropped() != 7 {
		t.Fatalf("closed queue kept packets or did not count the late one: dropped %d", q.Dropped())
	}
}

// BenchmarkDeliverRTP is the hub side of a remuxing reader: it must not allocate.
func BenchmarkDeliverRTP(b *testing.B) {
	pool := mrtp.NewPool()
	q := NewQueue(1024)
	s := q.Sink(0)
	batch := make([]Queued, 0, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.DeliverRTP(pool.Get(1200))
		if i%64 == 63 {
			for _, e := range q.Take(batch) {
				e.P.Release()
			}
		}
	}
	q.Close()
}
