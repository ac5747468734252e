//go:build linux

package st2110_test

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/st2110"
)

// LoadEnv turns TestLoad1080p5994 on; its value is the run's length in seconds (default 10).
const loadEnv = "MESHGW_ST2110_LOAD"

// reassemble is an rtp.SourceHandler that feeds one video track into a Reassembler, as the
// node's tap does.
type reassemble struct{ r *st2110.Reassembler }

func (h reassemble) OnReady([]byte, []rtp.Track) error { return nil }
func (h reassemble) WriteRTP(_ int, b []byte)          { h.r.WriteRTP(b) }
func (h reassemble) WriteRTCP(int, []byte)             {}
func (h reassemble) OnDisconnect(error)                {}

func threadCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func processCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestLoad1080p5994 receives 1080p59.94 4:2:2 10-bit (≈2.5 Gbit/s, ≈216 k packets/s of 1460
// bytes) over loopback through rtp.RTPSource (recvmmsg, the node's receive path) into the
// reassembler, from a sender goroutine on its own thread that releases each millisecond's packets
// in sendmmsg batches. It reports frames sent and reassembled complete, and the receiver's CPU
// per packet and per frame (the process's CPU less the sender thread's). Off unless
// MESHGW_ST2110_LOAD is set (a number of seconds).
func TestLoad1080p5994(t *testing.T) {
	secs, err := strconv.Atoi(os.Getenv(loadEnv))
	if os.Getenv(loadEnv) == "" {
		t.Skipf("set %s=SECONDS to run the 1080p59.94 load test", loadEnv)
	}
	if err != nil || secs <= 0 {
		secs = 10
	}
	v, err := st2110.ParseVideoFmtp("sampling=YCbCr-4:2:2; width=1920; height=1080; depth=10; exactframerate=60000/1001")
	if err != nil {
		t.Fatal(err)
	}
	r, err := st2110.NewReassembler(st2110.ReassemblerConfig{Video: v})
	if err != nil {
		t.Fatal(err)
	}
	probe, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	src, err := rtp.NewRTPSource(rtp.RTPSourceConfig{
		Legs:   []rtp.RTPLeg{{Addr: netip.MustParseAddr("127.0.0.1"), Ports: []int{port}}},
		Tracks: []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}}, NoRTCP: true,
	}, reassemble{r})
	if err != nil {
		t.Fatal(err)
	}
	pk, err := st2110.NewPacketizer(st2110.PacketizerConfig{Video: v, PayloadType: 96, SSRC: 1})
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, v.FrameSize())
	for i := range frame {
		frame[i] = byte(i * 7)
	}
	npk := pk.PacketsPerFrame()
	tframe := v.FramePeriod()
	nframes := int(time.Duration(secs) * time.Second / tframe)

	var sendCPU time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	cpu0, wall0 := processCPU(), time.Now()
	go func() {
		defer wg.Done()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c0 := threadCPU()
		defer func() { sendCPU = threadCPU() - c0 }()
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		_ = c.SetWriteBuffer(8 << 20)
		pc := ipv4.NewPacketConn(c)
		dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i] = ipv4.Message{Buffers: [][]byte{make([]byte, 1500)}, Addr: dst}
		}
		start := time.Now()
		for f := 0; f < nframes; f++ {
			_ = pk.Begin(frame, uint32(f*1501))
			for j := 0; !pk.Done(); {
				// the packets due by now (linear over the frame) leave in batches
				due := start.Add(time.Duration(f)*tframe + time.Duration(j)*tframe/time.Duration(npk))
				if d := time.Until(due); d > 0 {
					ts := unix.NsecToTimespec(int64(d))
					_ = unix.Nanosleep(&ts, nil)
				}
				n := 0
				for n < len(msgs) && !pk.Done() && !start.Add(time.Duration(f)*tframe+time.Duration(j)*tframe/time.Duration(npk)).After(time.Now()) {
					b := msgs[n].Buffers[0][:1500]
					msgs[n].Buffers[0] = b[:pk.Next(b)]
					n++
					j++
				}
				for k := 0; k < n; {
					w, err := pc.WriteBatch(msgs[k:n], 0)
					if err != nil {
						t.Error(err)
						return
					}
					k += w
				}
				for k := range msgs[:n] {
					msgs[k].Buffers[0] = msgs[k].Buffers[0][:1500]
				}
			}
		}
	}()
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	wall := time.Since(wall0)
	cpu := processCPU() - cpu0
	src.Close()
	r.Flush()
	st := r.Stats()
	rs := src.Stats()
	recvCPU := cpu - sendCPU
	t.Logf("1080p59.94 4:2:2 10-bit over loopback, %v: sent %d frames (%d packets/frame, %.0f k packets/s, %.2f Gbit/s)",
		wall.Round(time.Millisecond), nframes, npk, float64(nframes*npk)/wall.Seconds()/1e3, float64(nframes*npk*1460*8)/wall.Seconds()/1e9)
	t.Logf("received %d datagrams; reassembled %d complete, %d incomplete, %d lost packets, %d no-buffer",
		rs.Received, st.Frames, st.Incomplete, st.Lost, st.NoBuffer)
	t.Logf("receiver CPU %v (%.0f %% of one core): %.0f ns per packet, %.0f µs per frame; sender thread %v",
		recvCPU.Round(time.Millisecond), 100*recvCPU.Seconds()/wall.Seconds(), float64(recvCPU.Nanoseconds())/float64(rs.Received),
		float64(recvCPU.Microseconds())/float64(max(1, st.Frames+st.Incomplete)), sendCPU.Round(time.Millisecond))
	if st.Frames+st.Incomplete == 0 {
		t.Fatal("no frames")
	}
}
