package st2110out

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/st2110"
)

const (
	clipW, clipH, clipRate = 320, 240, 25
)

func clipVideo(t testing.TB) *st2110.Video {
	t.Helper()
	v, err := st2110.ParseVideoFmtp(fmt.Sprintf("sampling=YCbCr-4:2:2; width=%d; height=%d; depth=8; exactframerate=%d; colorimetry=BT709", clipW, clipH, clipRate))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// clip makes n UYVY frames with ffmpeg's testsrc; it returns the frames and their MD5s (hex).
func clip(t *testing.T, n int) ([][]byte, map[string]int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.uyvy")
	out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=%d", clipW, clipH, clipRate),
		"-frames:v", fmt.Sprint(n), "-pix_fmt", "uyvy422", "-f", "rawvideo", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	size := clipW * clipH * 2
	var frames [][]byte
	sums := map[string]int{}
	for i := 0; i+size <= len(b); i += size {
		frames = append(frames, b[i:i+size])
		s := md5.Sum(b[i : i+size])
		sums[hex.EncodeToString(s[:])] = i / size
	}
	return frames, sums
}

// feed plays frames into s as a hub would (RFC 4175 packets in pooled buffers) at the clip's
// frame rate, from a packetizer of its own (ffmpeg-like 1400-byte packets, so the sender
// really re-cuts them).
func feed(t *testing.T, s *Sender, v *st2110.Video, frames [][]byte, ctx context.Context) {
	t.Helper()
	pool := rtp.NewPool()
	pk, err := st2110.NewPacketizer(st2110.PacketizerConfig{Video: v, PayloadType: 96, SSRC: 1, MaxPacket: 1400})
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(time.Second / clipRate)
	defer tick.Stop()
	buf := make([]byte, 1500)
	for i, f := range frames {
		if err := pk.Begin(f, uint32(i*3600)); err != nil {
			t.Fatal(err)
		}
		for !pk.Done() {
			n := pk.Next(buf)
			p := pool.Get(n)
			copy(p.Bytes(), buf[:n])
			s.DeliverRTP(p)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// freeUDPPort returns a free even UDP port on 127.0.0.1.
func freeUDPPort(t *testing.T) int {
	p, _ := peertest.FreeUDPPair(t)
	return p
}

var (
	framemd5Line = regexp.MustCompile(`(?m)^\s*0,\s*-?\d+,\s*-?\d+,\s*\d+,\s*\d+,\s*([0-9a-f]{32})\s*$`)
	checksumLine = regexp.MustCompile(`(?m)^\d+:\d+:\d+\.\d+ ([0-9a-f]{32})\s*$`)
)

// TestReceiversReadTheSDP: the sender's output, described by the SDP it writes, is read by
// ffmpeg (-i out.sdp) and by GStreamer (filesrc ! sdpdemux ! rtpvrawdepay); every frame they
// decode is one of the source's, byte for byte.
func TestReceiversReadTheSDP(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:sdpdemux", "gst:rtpvrawdepay", "gst:checksumsink")
	frames, sums := clip(t, 100)
	v := clipVideo(t)
	for _, reader := range []string{"ffmpeg", "gstreamer"} {
		t.Run(reader, func(t *testing.T) {
			dest := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freeUDPPort(t)))
			s, err := New(Config{Video: v, Dest: dest, PayloadType: 96, SSRC: 0x2110})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sdp := st2110.SenderSDP("meshgw test", v, s.cfg.TP, 96, dest, netip.Addr{}, "localmac=02-00-00-00-00-01")
			path := filepath.Join(t.TempDir(), "out.sdp")
			if err := os.WriteFile(path, sdp, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			const read = 30
			var p *peertest.Proc
			re := framemd5Line
			if reader == "ffmpeg" {
				p = peertest.Run(ctx, t, "ffmpeg", "-nostats", "-protocol_whitelist", "file,udp,rtp", "-buffer_size", "4000000",
					"-i", path, "-frames:v", fmt.Sprint(read), "-f", "framemd5", "-")
			} else {
				re = checksumLine
				p = peertest.Run(ctx, t, "gst-launch-1.0", "filesrc", "location="+path, "!", "sdpdemux", "latency=200", "!",
					"rtpvrawdepay", "!", "identity", fmt.Sprintf("eos-after=%d", read), "!", "checksumsink", "hash=md5")
			}
			time.Sleep(500 * time.Millisecond) // the reader binds its port
			fctx, fcancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); feed(t, s, v, frames, fctx) }()
			err = p.Wait(30 * time.Second)
			fcancel()
			wg.Wait()
			out := p.Output()
			if err != nil && !peertest.GstGotEOS(out) {
				t.Fatalf("%s: %v\n%s", reader, err, p.Tail(3000))
			}
			m := re.FindAllStringSubmatch(out, -1)
			if len(m) < read-1 {
				t.Fatalf("%s decoded %d frames from the SDP, want %d\nSDP:\n%s\n%s", reader, len(m), read, sdp, p.Tail(3000))
			}
			// A UDP reader on a loaded host can lose packets (and ffmpeg's depacketizer still
			// emits the frame), and its first frame may be partial: nine in ten must be exact.
			bad := 0
			for _, l := range m[1:] {
				if _, ok := sums[l[1]]; !ok {
					bad++
				}
			}
			if bad > len(m)/10 {
				t.Fatalf("%s decoded %d of %d frames that are none of the source's", reader, bad, len(m)-1)
			}
			st := s.Stats()
			t.Logf("%s: %d frames, all source frames; sender %+v", reader, len(m), st)
			if st.Errors != 0 {
				t.Errorf("send errors: %+v", st)
			}
		})
	}
}

// TestTwoLegs: with Leg2 the sender sends every packet to both destinations, byte for byte
// (SMPTE 2022-7), and frames stamped from the media clock: consecutive frames' RTP timestamps
// differ by whole frame periods of 90 kHz.
func TestTwoLegs(t *testing.T) {
	v := clipVideo(t)
	var conns [2]*net.UDPConn
	var dests [2]netip.AddrPort
	for i := range conns {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadBuffer(4 << 20)
		conns[i], dests[i] = c, c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	s, err := New(Config{Video: v, Dest: dests[0], Leg2: dests[1], PayloadType: 96, TP: st2110.TPW})
	if err != nil {
		t.Fatal(err)
	}
	frames := make([][]byte, 6)
	for i := range frames {
		frames[i] = make([]byte, v.FrameSize())
		for j := range frames[i] {
			frames[i][j] = byte(i + j)
		}
	}
	feed(t, s, v, frames, context.Background())
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && s.Stats().Frames+s.Stats().Dropped < uint64(len(frames)); {
		time.Sleep(10 * time.Millisecond)
	}
	s.Close()
	var got [2][][]byte
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			b := make([]byte, 2000)
			n, err := c.Read(b)
			if err != nil {
				break
			}
			got[i] = append(got[i], b[:n])
		}
		c.Close()
	}
	if len(got[0]) == 0 || len(got[0]) != len(got[1]) {
		t.Fatalf("leg 1 got %d packets, leg 2 %d", len(got[0]), len(got[1]))
	}
	var tss []uint32
	for i := range got[0] {
		if string(got[0][i]) != string(got[1][i]) {
			t.Fatalf("packet %d differs between the legs", i)
		}
		if got[0][i][1]&0x80 != 0 {
			tss = append(tss, uint32(got[0][i][4])<<24|uint32(got[0][i][5])<<16|uint32(got[0][i][6])<<8|uint32(got[0][i][7]))
		}
	}
	for i := 1; i < len(tss); i++ {
		if d := tss[i] - tss[i-1]; d == 0 || d%3600 != 0 {
			t.Errorf("frames %d and %d: RTP timestamps %d apart, want whole 25 Hz periods (3600)", i-1, i, d)
		}
	}
	t.Logf("%d packets on each leg, %d frames, stats %+v", len(got[0]), len(tss), s.Stats())
}
