//go:build unix

package node

import (
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/st2110"
)

// discard is a SourceHandler that drops what it gets (the hub is measured elsewhere).
type discard struct{}

func (discard) OnReady([]byte, []rtp.Track) error { return nil }
func (discard) WriteRTP(int, []byte)              {}
func (discard) WriteRTCP(int, []byte)             {}
func (discard) OnDisconnect(error)                {}

// BenchmarkST2110Tap is the node's per-packet work for a received 2110 video flow on top of the
// hub: the tap's reassembly (1080p 4:2:2 10-bit) and its 2110-21 meter. ns/op is per packet;
// cpu-ns/op is the process's CPU per packet, steadier than wall time on a shared host.
func BenchmarkST2110Tap(b *testing.B) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=b\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\nc=IN IP4 127.0.0.1\r\n" +
		"a=rtpmap:96 raw/90000\r\na=fmtp:96 sampling=YCbCr-4:2:2; width=1920; height=1080; depth=10; exactframerate=60000/1001; TP=2110TPN\r\n"
	sess, err := st2110.ParseSDP([]byte(sdp))
	if err != nil {
		b.Fatal(err)
	}
	tap, err := newST2110Tap(sess, discard{}, func(int) st2110.FrameSink { return nil })
	if err != nil {
		b.Fatal(err)
	}
	v := sess.Essences[0].Video
	pk, err := st2110.NewPacketizer(st2110.PacketizerConfig{Video: v, PayloadType: 96})
	if err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, v.FrameSize())
	var pkts [][]byte
	_ = pk.Begin(frame, 0)
	for !pk.Done() {
		buf := make([]byte, 1500)
		pkts = append(pkts, buf[:pk.Next(buf)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := benchCPU()
	seq, ts := uint16(0), uint32(0)
	for i := 0; i < b.N; i++ {
		j := i % len(pkts)
		if j == 0 {
			ts += 1501
		}
		p := pkts[j]
		binary.BigEndian.PutUint16(p[2:], seq)
		binary.BigEndian.PutUint32(p[4:], ts)
		seq++
		tap.WriteRTP(0, p)
	}
	b.StopTimer()
	b.ReportMetric(float64(benchCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if st := tap.stats()[0]; st.Malformed != 0 || st.Lost != 0 {
		b.Fatalf("stats %+v", st)
	}
}

// benchCPU is the process's user and system CPU time.
func benchCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
