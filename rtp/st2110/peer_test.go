package st2110_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp/st2110"
)

// clipFrames and clipRate: two seconds of 320×240, enough packets per frame (and lines split
// across packets) to exercise the reassembly while keeping the test to seconds.
const (
	clipW, clipH = 320, 240
	clipFrames   = 50
	clipRate     = 25
)

// genRaw writes clipFrames frames of ffmpeg's testsrc to a raw file with the given output
// options (-pix_fmt ..., -c:v ...) and returns its path.
func genRaw(t *testing.T, dir, name string, opts ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	args := append([]string{"-v", "error", "-y", "-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=%d", clipW, clipH, clipRate),
		"-frames:v", fmt.Sprint(clipFrames)}, opts...)
	args = append(args, "-f", "rawvideo", path)
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
	return path
}

// frameSums splits a raw file into frames of size bytes and returns their MD5s.
func frameSums(t *testing.T, path string, size int) [][md5.Size]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != size*clipFrames {
		t.Fatalf("%s: %d bytes, want %d frames of %d", path, len(b), clipFrames, size)
	}
	var out [][md5.Size]byte
	for i := 0; i < len(b); i += size {
		out = append(out, md5.Sum(b[i:i+size]))
	}
	return out
}

// receiver reads one RFC 4175 flow from a UDP socket into a Reassembler and keeps each complete
// frame's MD5.
type receiver struct {
	conn *net.UDPConn
	r    *st2110.Reassembler
	mu   sync.Mutex
	sums [][md5.Size]byte
	done chan struct{}
}

func newReceiver(t *testing.T, v *st2110.Video) *receiver {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadBuffer(8 << 20)
	rc := &receiver{conn: c, done: make(chan struct{})}
	rc.r, err = st2110.NewReassembler(st2110.ReassemblerConfig{Video: v, Sink: st2110.FrameSinkFunc(func(f *st2110.Frame) {
		rc.mu.Lock()
		rc.sums = append(rc.sums, md5.Sum(f.Data))
		rc.mu.Unlock()
		f.Release()
	})})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(rc.done)
		buf := make([]byte, 9000)
		for {
			n, err := c.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err == nil {
				rc.r.WriteRTP(buf[:n])
			}
		}
	}()
	t.Cleanup(rc.close)
	return rc
}

func (rc *receiver) port() int { return rc.conn.LocalAddr().(*net.UDPAddr).Port }

func (rc *receiver) close() {
	rc.conn.Close()
	<-rc.done
}

// check waits for the frames to settle and compares them with want, in order.
func (rc *receiver) check(t *testing.T, want [][md5.Size]byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && rc.r.Stats().Frames+rc.r.Stats().Incomplete < uint64(len(want)) {
		time.Sleep(50 * time.Millisecond)
	}
	st := rc.r.Stats()
	drops := peertest.UDPDrops(rc.port())
	t.Logf("reassembler: %+v", st)
	rc.close()
	if drops > 0 {
		// a loaded host starved the reader: what the kernel dropped may make frames
		// incomplete, nothing else
		t.Logf("the kernel dropped %d datagrams at the receiver's socket", drops)
	}
	if st.Malformed != 0 || st.Late != 0 || st.Lost > drops ||
		!(st.Frames == uint64(len(want)) && st.Incomplete == 0 || drops > 0 && st.Frames+st.Incomplete+drops >= uint64(len(want))) {
		t.Fatalf("reassembled %d complete frames of %d sent (stats %+v, socket drops %d)", st.Frames, len(want), st, drops)
	}
	// every complete frame is one of the source's, in order
	rc.mu.Lock()
	defer rc.mu.Unlock()
	next := 0
	for i, s := range rc.sums {
		for next < len(want) && want[next] != s {
			next++
		}
		if next == len(want) {
			t.Fatalf("complete frame %d (MD5 %x) is not the source's next frame", i, s)
		}
		next++
	}
}

func video422(depth int) *st2110.Video {
	s, err := st2110.ParseSDP([]byte(fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=t\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP4 127.0.0.1\r\n"+
		"a=rtpmap:96 raw/90000\r\na=fmtp:96 sampling=YCbCr-4:2:2; width=%d; height=%d; depth=%d; exactframerate=%d\r\n", clipW, clipH, depth, clipRate)))
	if err != nil {
		panic(err)
	}
	return s.Essences[0].Video
}

// TestGStreamerSender: GStreamer's rtpvrawpay (UYVY and UYVP, the RFC 4175 4:2:2 8- and 10-bit
// layouts) sends ffmpeg-made frames in real time; every frame comes out of the reassembler
// whole, in order, byte for byte the source's.
func TestGStreamerSender(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtpvrawpay", "gst:rawvideoparse", "gst:clocksync")
	dir := t.TempDir()
	for _, c := range []struct {
		format string
		depth  int
		opts   []string
	}{
		{"UYVY", 8, []string{"-pix_fmt", "uyvy422"}},
		{"UYVP", 10, []string{"-pix_fmt", "yuv422p10", "-c:v", "bitpacked"}},
	} {
		t.Run(c.format, func(t *testing.T) {
			v := video422(c.depth)
			src := genRaw(t, dir, c.format+".raw", c.opts...)
			want := frameSums(t, src, v.FrameSize())
			rc := newReceiver(t, v)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p := peertest.Run(ctx, t, "gst-launch-1.0", "-q", "filesrc", "location="+src, "!",
				"rawvideoparse", "format="+lower(c.format), fmt.Sprintf("width=%d", clipW), fmt.Sprintf("height=%d", clipH),
				fmt.Sprintf("framerate=%d/1", clipRate), "!", "clocksync", "!", "rtpvrawpay", "pt=96", "!",
				"udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", rc.port()))
			p.MustSucceed(20 * time.Second)
			rc.check(t, want)
		})
	}
}

// TestFFmpegSender: ffmpeg's RFC 4175 packetizer (-c:v rawvideo uyvy422, and bitpacked for
// 10-bit), sending in real time (-re); every frame comes out whole and equal to the source.
func TestFFmpegSender(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	dir := t.TempDir()
	for _, c := range []struct {
		name   string
		depth  int
		pixfmt string
		codec  string
		gen    []string
	}{
		{"rawvideo", 8, "uyvy422", "rawvideo", []string{"-pix_fmt", "uyvy422"}},
		{"bitpacked", 10, "yuv422p10", "bitpacked", []string{"-pix_fmt", "yuv422p10", "-c:v", "bitpacked"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := video422(c.depth)
			packed := genRaw(t, dir, c.name+".packed", c.gen...)
			want := frameSums(t, packed, v.FrameSize())
			src := genRaw(t, dir, c.name+".raw", "-pix_fmt", c.pixfmt)
			rc := newReceiver(t, v)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p := peertest.Run(ctx, t, "ffmpeg", "-v", "error", "-re", "-f", "rawvideo", "-pix_fmt", c.pixfmt,
				"-video_size", fmt.Sprintf("%dx%d", clipW, clipH), "-framerate", fmt.Sprint(clipRate), "-i", src,
				"-c:v", c.codec, "-f", "rtp", fmt.Sprintf("rtp://127.0.0.1:%d", rc.port()))
			p.MustSucceed(20 * time.Second)
			rc.check(t, want)
		})
	}
}

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }
