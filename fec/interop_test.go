package fec

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// The interop tests run real 2022-1 implementations on 127.0.0.1: FFmpeg's
// prompeg and GStreamer's rtpst2022-1-fecenc send into sockets opened here
// (media P, column FEC P+2, row FEC P+4), and our decoder must rebuild the
// media packets the test drops, byte for byte; our encoder sends into
// GStreamer's rtpst2022-1-fecdec, whose output comes back here.

// stream numbers of a capture.
const (
	capMedia = iota
	capColumn
	capRow
)

type captured struct {
	stream int
	data   []byte
}

// triple is three UDP sockets at P, P+2, P+4 whose readers record every
// datagram in arrival order.
type triple struct {
	port  int
	conns [3]*net.UDPConn
	mu    sync.Mutex
	pkts  []captured
	last  atomic.Int64 // unix nanos of the latest datagram
	wg    sync.WaitGroup
}

// listenTriple binds P, P+2 and P+4 on 127.0.0.1 and starts reading.  The
// sockets close, and the readers end, when the test ends.
func listenTriple(t *testing.T) *triple {
	t.Helper()
	tr := &triple{}
	tr.port, tr.conns = peertest.ListenFECPorts(t)
	for i, c := range tr.conns {
		_ = c.SetReadBuffer(8 << 20)
		tr.wg.Add(1)
		go tr.read(i, c)
	}
	t.Cleanup(tr.close)
	return tr
}

func (tr *triple) read(stream int, c *net.UDPConn) {
	defer tr.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		tr.mu.Lock()
		tr.pkts = append(tr.pkts, captured{stream: stream, data: bytes.Clone(buf[:n])})
		tr.mu.Unlock()
		tr.last.Store(time.Now().UnixNano())
	}
}

func (tr *triple) close() {
	for _, c := range tr.conns {
		c.Close()
	}
	tr.wg.Wait()
}

// settle waits until nothing has arrived for quiet (or timeout passes) and
// returns what was captured, in arrival order.
func (tr *triple) settle(quiet, timeout time.Duration) []captured {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := tr.last.Load(); l != 0 && time.Since(time.Unix(0, l)) > quiet {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]captured(nil), tr.pkts...)
}

// peerRun is one capture from a peer encoder.
type peerRun struct {
	name   string
	media  [][]byte // in sequence order
	first  uint16
	events []event // media (index into media) and FEC, in arrival order
}

// collect checks a capture (media contiguous, every FEC packet parses and
// validates, D bit matches its port) and turns it into a peerRun.
//
// Three sockets read by three goroutines do not preserve the order in
// which the peer sent across them (a row FEC packet can be recorded before
// the media packet sent ahead of it), so each FEC packet is replayed after
// the media packets that had arrived when it did, and never before the
// last media packet it protects: the order a receiver with a small jitter
// buffer sees, and the same on every run.
func collect(t *testing.T, name string, pkts []captured) *peerRun {
	t.Helper()
	run := &peerRun{name: name}
	var n [3]int
	type fecAt struct {
		ev    event
		after int // media index it is replayed after
	}
	var fecs []fecAt
	for _, c := range pkts {
		n[c.stream]++
		if c.stream == capMedia {
			seq := binary.BigEndian.Uint16(c.data[2:])
			if len(run.media) == 0 {
				run.first = seq
			}
			if idx := int(seq - run.first); idx != len(run.media) {
				t.Fatalf("%s: media seq %d arrived as packet %d, want consecutive (lost on loopback or reordered)", name, seq, len(run.media))
			}
			run.media = append(run.media, c.data)
			continue
		}
		k := Kind(c.stream - 1)
		p, err := ParsePacket(c.data)
		if err != nil {
			t.Fatalf("%s: %s FEC packet from the peer does not parse: %v", name, k, err)
		}
		if p.Header.Kind != k {
			t.Fatalf("%s: FEC with D bit %s arrived on the %s port", name, p.Header.Kind, k)
		}
		fecs = append(fecs, fecAt{ev: event{kind: int(k), data: c.data}, after: len(run.media) - 1})
	}
	t.Logf("%s: captured %d media, %d column FEC, %d row FEC packets", name, n[0], n[1], n[2])
	if n[0] < 300 {
		t.Fatalf("%s: only %d media packets captured", name, n[0])
	}
	byAfter := map[int][]event{}
	for _, f := range fecs {
		h, _ := ParseHeader(f.ev.data[RTPHeaderLen:])
		last := int(h.SNBase-run.first) + h.span()
		if last >= 1<<15 { // protects packets from before the capture started
			last = -1
		}
		at := min(max(f.after, last), len(run.media)-1)
		byAfter[at] = append(byAfter[at], f.ev)
	}
	for i, m := range run.media {
		run.events = append(run.events, event{kind: evMedia, data: m, index: i})
		run.events = append(run.events, byAfter[i]...)
	}
	return run
}

// dropPattern returns every-nth losses in the first third, then bursts of
// the given lengths, each in matrices of its own, and leaves the last two
// matrices alone (their column FEC comes late or, at the end, never).
func dropPattern(n, every, matrix int, burstLens ...int) map[int]bool {
	drop := map[int]bool{}
	for i := 10; i < n/3; i += every {
		drop[i] = true
	}
	at := n/3 + matrix
	for _, b := range burstLens {
		at += 3
		for i := range b {
			drop[at+i] = true
		}
		at += b + matrix
	}
	if at > n-2*matrix {
		panic(fmt.Sprintf("stream of %d packets too short for the pattern", n))
	}
	return drop
}

// checkPeerRun decodes the capture minus drop and asserts every dropped
// packet is rebuilt identical to what the peer sent, after checking that
// matrix theory says the pattern is recoverable with the peer's FEC.
func checkPeerRun(t *testing.T, run *peerRun, drop map[int]bool) {
	t.Helper()
	if theory := peel(t, run.events, drop); len(theory) != len(drop) {
		t.Fatalf("%s: drop pattern is not fully recoverable with the FEC the peer sent (%d of %d); fix the test", run.name, len(theory), len(drop))
	}
	res := decodeEvents(t, DecoderConfig{}, run.events, drop)
	checkRecovered(t, run.media, drop, drop, res)
	if res.stats.FECMalformed != 0 || res.stats.Inconsistent != 0 || res.stats.FECUnusable != 0 {
		t.Errorf("%s: decoder stats %+v", run.name, res.stats)
	}
	t.Logf("%s: dropped %d media packets (%v ...), rebuilt all %d byte-identical; decoder learned L×D %v",
		run.name, len(drop), firstN(sortedKeys(drop), 8), len(res.recovered), matrixOf(run))
}

func firstN(s []int, n int) []int { return s[:min(n, len(s))] }

func matrixOf(run *peerRun) string {
	dec, _ := NewDecoder(DecoderConfig{})
	for _, ev := range run.events {
		if ev.kind != evMedia {
			_ = dec.PushFEC(Kind(ev.kind), ev.data)
		}
	}
	l, d := dec.Matrix()
	return fmt.Sprintf("%d×%d", l, d)
}

// ffmpegFEC runs FFmpeg's prompeg sender (PEERS.md §9): a 2 s lavfi test
// pattern, MPEG-2 video at a constant 6 Mbit/s in MPEG-TS over RTP (PT 33,
// 1316-byte payloads), column FEC to P+2 and row FEC to P+4.
func ffmpegFEC(t *testing.T, l, d int) *peerRun {
	peertest.Require(t, "ffmpeg")
	tr := listenTriple(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := peertest.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "warning",
		"-f", "lavfi", "-i", "testsrc=size=640x480:rate=25", "-t", "2",
		"-c:v", "mpeg2video", "-b:v", "6M", "-minrate", "6M", "-maxrate", "6M", "-bufsize", "1M",
		"-f", "rtp_mpegts", "-fec", fmt.Sprintf("prompeg=l=%d:d=%d", l, d),
		fmt.Sprintf("rtp://127.0.0.1:%d", tr.port))
	p.MustSucceed(30 * time.Second)
	return collect(t, fmt.Sprintf("ffmpeg prompeg l=%d d=%d", l, d), tr.settle(300*time.Millisecond, 5*time.Second))
}

func TestInteropFFmpegPrompeg(t *testing.T) {
	for _, tc := range []struct {
		l, d   int
		every  int
		bursts []int
	}{
		// One loss in 7: never two in a row of 5; bursts of L (one per
		// column) and L+1 (a row and one more: columns, then row, then
		// column again).
		{5, 5, 7, []int{5, 6}},
		{10, 10, 11, []int{10, 11}},
		{20, 5, 21, []int{20, 21}},
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.l, tc.d), func(t *testing.T) {
			run := ffmpegFEC(t, tc.l, tc.d)
			checkPeerRun(t, run, dropPattern(len(run.media), tc.every, tc.l*tc.d, tc.bursts...))
		})
	}
}

// gstFEC runs GStreamer's rtpst2022-1-fecenc (PEERS.md §9) after the given
// payloader chain; media SSRC 0, as newer GStreamer requires.
func gstFEC(t *testing.T, name, src string, l, d int, rowFEC bool) *peerRun {
	peertest.Require(t, "gst-launch-1.0", "gst:rtpst2022-1-fecenc", "gst:x264enc", "gst:rtph264pay", "gst:mpegtsmux", "gst:rtpmp2tpay")
	tr := listenTriple(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := strings.Fields(src)
	args = append(args, "!", "rtpst2022-1-fecenc", "name=enc", fmt.Sprintf("columns=%d", l), fmt.Sprintf("rows=%d", d),
		fmt.Sprintf("enable-row-fec=%t", rowFEC),
		"!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", tr.port), "sync=false",
		"enc.fec_0", "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", tr.port+2), "sync=false", "async=false")
	if rowFEC {
		args = append(args, "enc.fec_1", "!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", tr.port+4), "sync=false", "async=false")
	}
	p := peertest.Run(ctx, t, "gst-launch-1.0", append([]string{"-q"}, args...)...)
	p.MustSucceed(30 * time.Second)
	return collect(t, name, tr.settle(300*time.Millisecond, 5*time.Second))
}

const (
	gstH264 = "videotestsrc num-buffers=60 pattern=smpte ! video/x-raw,width=640,height=480,framerate=25/1 " +
		"! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 bitrate=4000 ! h264parse " +
		"! rtph264pay pt=96 ssrc=0 mtu=1200 config-interval=-1"
	gstMP2T = "videotestsrc num-buffers=60 pattern=smpte ! video/x-raw,format=I420,width=1280,height=720,framerate=25/1 " +
		"! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=25 bitrate=3000 ! h264parse " +
		"! mpegtsmux alignment=7 ! rtpmp2tpay pt=33 ssrc=0"
)

func TestInteropGStreamerFecenc(t *testing.T) {
	t.Run("h264-varying-sizes/2D-5x5", func(t *testing.T) {
		// H.264 packets of many sizes with markers at frame ends: length,
		// marker and timestamp recovery against a real encoder.
		run := gstFEC(t, "gstreamer fecenc 5x5 H.264", gstH264, 5, 5, true)
		sizes := map[int]bool{}
		markers := 0
		for _, m := range run.media {
			sizes[len(m)] = true
			if m[1]&0x80 != 0 {
				markers++
			}
		}
		drop := dropPattern(len(run.media), 7, 25, 5, 6)
		// Also lose packets carrying a marker bit, each alone in its row.
		for i, m := range run.media {
			if m[1]&0x80 != 0 && i > len(run.media)/3+200 && i < len(run.media)-100 && i%5 != 0 && len(drop) < 120 {
				drop[i] = true
			}
		}
		t.Logf("%d distinct packet sizes, %d marker packets", len(sizes), markers)
		checkPeerRun(t, run, drop)
	})
	t.Run("mp2t/column-only-10x5", func(t *testing.T) {
		run := gstFEC(t, "gstreamer fecenc 10x5 column-only MPEG-TS", gstMP2T, 10, 5, false)
		checkPeerRun(t, run, dropPattern(len(run.media), 13, 50, 10, 7))
	})
}

// udpBound reports whether something listens on 127.0.0.1:port (or any
// address) for UDP, from /proc/net/udp.
func udpBound(port int) bool {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return false
	}
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasSuffix(f[1], suffix) {
			return true
		}
	}
	return false
}

func freeUDPPort(t *testing.T) int {
	for range 100 {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p+4 > 65535 || udpBound(p+2) || udpBound(p+4) {
			continue
		}
		return p
	}
	t.Fatal("no free UDP port triple")
	return 0
}

// TestInteropGStreamerFecdec sends our encoder's output, minus dropped
// media packets, into GStreamer's rtpst2022-1-fecdec and checks that the
// decoder's output (sent back to us) contains every dropped packet,
// identical to the original.
func TestInteropGStreamerFecdec(t *testing.T) {
	peertest.Require(t, "gst-launch-1.0", "gst:rtpst2022-1-fecdec")
	for _, tc := range []struct {
		cfg   Config
		every int
		burst []int
	}{
		{Config{Columns: 5, Rows: 5}, 7, []int{5, 6}},
		{Config{Columns: 10, Rows: 5, Mode: ModeColumn}, 13, []int{10}},
	} {
		t.Run(fmt.Sprintf("%dx%d-%s", tc.cfg.Columns, tc.cfg.Rows, tc.cfg.Mode), func(t *testing.T) {
			back := listenTriple(t) // only its media socket is used
			in := freeUDPPort(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			udpsrc := func(port int) []string {
				return []string{"udpsrc", "address=127.0.0.1", fmt.Sprintf("port=%d", port), "buffer-size=4194304", "caps=application/x-rtp"}
			}
			args := append([]string{"-q"}, udpsrc(in)...)
			args = append(args, "!", "rtpst2022-1-fecdec", "name=dec", "size-time=5000000000",
				"!", "udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", back.port), "sync=false")
			args = append(append(args, udpsrc(in+2)...), "!", "dec.fec_0")
			args = append(append(args, udpsrc(in+4)...), "!", "dec.fec_1")
			p := peertest.Run(ctx, t, "gst-launch-1.0", args...)
			for deadline := time.Now().Add(20 * time.Second); !(udpBound(in) && udpBound(in+2) && udpBound(in+4)); {
				if time.Now().After(deadline) || p.Exited() {
					t.Fatalf("GStreamer did not bind %d, %d, %d: %s", in, in+2, in+4, p.Tail(2000))
				}
				time.Sleep(20 * time.Millisecond)
			}

			media := genStream(rand.New(rand.NewPCG(uint64(tc.cfg.Columns), 1)), streamOpts{n: 1200, startSeq: 65000, ssrc: 0, minLen: 100, maxLen: 1300})
			evs := encodeAll(t, tc.cfg, media)
			drop := dropPattern(len(media), tc.every, tc.cfg.Columns*tc.cfg.Rows, tc.burst...)
			if theory := peel(t, evs, drop); len(theory) != len(drop) {
				t.Fatalf("drop pattern not recoverable in theory (%d of %d)", len(theory), len(drop))
			}
			var conns [3]*net.UDPConn
			for i := range conns {
				c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: in + 2*i})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns[i] = c
			}
			sent := 0
			for _, ev := range evs {
				switch {
				case ev.kind == evMedia && drop[ev.index]:
					continue
				case ev.kind == evMedia:
					_, _ = conns[0].Write(ev.data)
					sent++
					if sent%8 == 0 {
						time.Sleep(time.Millisecond) // keep GStreamer's three socket threads roughly in step
					}
				default:
					_, _ = conns[1+ev.kind].Write(ev.data)
				}
			}
			// Wait for every packet, dropped or not, to come back, or a timeout.
			var out []captured
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
				out = back.settle(0, 0)
				if got := seqsOf(out); containsAll(got, media, drop) && len(got) >= len(media) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			got := seqsOf(out)
			dups := len(out) - len(got)
			for i := range drop {
				seq := binary.BigEndian.Uint16(media[i][2:])
				copies, ok := got[seq]
				if !ok {
					t.Errorf("dropped seq %d not in GStreamer's output", seq)
					continue
				}
				for _, c := range copies {
					if !bytes.Equal(c, media[i]) {
						t.Errorf("seq %d rebuilt by GStreamer differs:\n got %x\nwant %x", seq, head(c), head(media[i]))
					}
				}
			}
			for seq, copies := range got {
				i := int(seq - binary.BigEndian.Uint16(media[0][2:]))
				for _, c := range copies {
					if i >= len(media) || !bytes.Equal(c, media[i]) {
						t.Errorf("GStreamer output seq %d differs from what was sent", seq)
						break
					}
				}
			}
			if len(got) != len(media) {
				t.Errorf("GStreamer output %d distinct packets, want %d", len(got), len(media))
			}
			t.Logf("%s %dx%d: sent %d of %d media packets (dropped %d: %v ...), GStreamer output %d packets, %d distinct, all %d dropped rebuilt identical (%d duplicate outputs)",
				tc.cfg.Mode, tc.cfg.Columns, tc.cfg.Rows, sent, len(media), len(drop), firstN(sortedKeys(drop), 8), len(out), len(got), len(drop), dups)
		})
	}
}

func seqsOf(pkts []captured) map[uint16][][]byte {
	m := map[uint16][][]byte{}
	for _, c := range pkts {
		if c.stream == capMedia && len(c.data) >= RTPHeaderLen {
			s := binary.BigEndian.Uint16(c.data[2:])
			m[s] = append(m[s], c.data)
		}
	}
	return m
}

func containsAll(got map[uint16][][]byte, media [][]byte, drop map[int]bool) bool {
	for i := range drop {
		if _, ok := got[binary.BigEndian.Uint16(media[i][2:])]; !ok {
			return false
		}
	}
	return true
}
