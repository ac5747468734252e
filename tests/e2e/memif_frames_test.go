package e2e

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp/memifrtp"
)

// TestMemifFramesFromST2110: GStreamer's rtpvrawpay sends a 320×240 UYVY flow to an st2110://
// route whose node has a memif interface with form: frames; `meshgw memif -dump` (a separate
// process, the memif slave) takes the reassembled frames. Every frame it gets is one whole
// buffer chain whose header names 320×240 UYVY and whose data's MD5 is one of the source's
// frames (ffmpeg's testsrc, as framemd5 prints them): no torn frame. Frame counters and RTP
// timestamps rise together, and the frames delivered are the reassembler's complete frames
// less those dropped (counted) while the consumer was behind.
func TestMemifFramesFromST2110(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtpvrawpay", "gst:rawvideoparse", "gst:clocksync")
	const frames = 50 // 2 s
	dir, err := os.MkdirTemp("", "mgw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src, sums := st2110Raw(t, dir, frames)
	port, _ := peertest.FreeUDPPair(t)
	sdpPath := filepath.Join(dir, "cam.sdp")
	if err := os.WriteFile(sdpPath, []byte(st2110SDP("127.0.0.1", port)), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "memif.sock")
	g := startGateway(t, fmt.Sprintf(`rtsp:
  listen: LISTEN
node:
  memif:
    socket: %s
    interfaces:
      - {id: 7, secret: s3cret, route: cam, form: frames}
routes:
  cam:
    source: st2110://%s
`, sock, sdpPath))
	bin := meshgwBinary(t)
	dump := filepath.Join(dir, "frames.memif")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cons := peertest.Run(ctx, t, bin, "memif", "-socket", sock, "-id", "7", "-secret", "s3cret",
		"-bsize", "65536", "-rsize", "6", "-dump", dump, "-duration", "6s")
	if _, err := cons.WaitForOutput(regexp.MustCompile(`connected to`), 15*time.Second); err != nil {
		t.Fatalf("consumer did not connect: %v\n%s", err, cons.Output())
	}
	sender := peertest.Run(ctx, t, "gst-launch-1.0", gstUYVYSender(src,
		"udpsink", "host=127.0.0.1", fmt.Sprintf("port=%d", port))...)
	sender.MustSucceed(30 * time.Second)
	consOut := cons.MustSucceed(30 * time.Second)
	st, _ := st2110Stats(t, g)
	var sink node.FlowStats
	for _, f := range g.Node.Flows() {
		if f.Kind() == node.SinkMemif {
			if sink, err = g.Node.Stats(f.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("reassembler: %+v; memif frames sink: frames %d dropped %d; consumer: %s", st, sink.Packets, sink.Dropped, tail(consOut))

	b, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	const size = st2110W * st2110H * 2
	var got, torn int
	var last memifrtp.FrameMeta
	for len(b) > 0 {
		if len(b) < memifrtp.FrameHeaderLen {
			t.Fatalf("dump ends in a partial header (%d bytes)", len(b))
		}
		n := memifrtp.FrameHeaderLen + int(binary.LittleEndian.Uint32(b[20:]))
		if n > len(b) {
			t.Fatalf("dump ends in a partial frame")
		}
		m, data, err := memifrtp.ParseFrame(b[:n])
		b = b[n:]
		if err != nil {
			t.Fatalf("frame %d: %v", got, err)
		}
		if m.Width != st2110W || m.Height != st2110H || m.PixelFormat != memifrtp.FourCC("UYVY") || len(data) != size {
			t.Fatalf("frame %d: header %+v, %d bytes; want %dx%d UYVY, %d bytes", got, m, len(data), st2110W, st2110H, size)
		}
		sum := md5.Sum(data)
		if _, ok := sums[hex.EncodeToString(sum[:])]; !ok {
			torn++
		}
		if got > 0 {
			// 25 frames/s on the 90 kHz clock: 3600 ticks per counter step
			if m.Counter <= last.Counter || m.RTPTimestamp-last.RTPTimestamp != uint32(3600*(m.Counter-last.Counter)) {
				t.Fatalf("frame %d: counter %d ts %d after counter %d ts %d", got, m.Counter, m.RTPTimestamp, last.Counter, last.RTPTimestamp)
			}
		}
		last = m
		got++
	}
	t.Logf("consumer got %d whole frames over memif, %d of them not a source frame", got, torn)
	if torn != 0 {
		t.Fatalf("%d frames over memif are none of the source's (torn)", torn)
	}
	if uint64(got) != sink.Packets {
		t.Fatalf("consumer got %d frames, the gateway counts %d delivered", got, sink.Packets)
	}
	// frames finished before the route's memif sink attached are not the consumer's; the rest
	// are delivered or counted as dropped
	if got < frames/2 || uint64(got)+sink.Dropped > st.Frames {
		t.Fatalf("consumer got %d frames (dropped %d) of %d complete frames reassembled, %d sent", got, sink.Dropped, st.Frames, frames)
	}
}

// TestMemifFrameProducerToRTSPReader: `meshgw memif -feed` (a separate process, the memif slave)
// writes whole 320×240 UYVY frames (ffmpeg's testsrc) in the frames form into a producer
// interface with form: frames; the route (source: memif://ID, an ST 2110 SDP) cuts them into RFC
// 4175 packets, and GStreamer's rtspsrc ! rtpvrawdepay reads the route over RTSP: every frame
// it decodes has the MD5 of a source frame.
func TestMemifFrameProducerToRTSPReader(t *testing.T) {
	peertest.Require(t, "ffmpeg", "gst-launch-1.0", "gst:rtspsrc", "gst:rtpvrawdepay", "gst:checksumsink")
	const frames = 125 // 5 s at 25 frames/s
	dir, err := os.MkdirTemp("", "mgw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	src, sums := st2110Raw(t, dir, frames)
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const size = st2110W * st2110H * 2
	var feed []byte
	for i := 0; i < frames; i++ {
		var h [memifrtp.FrameHeaderLen]byte
		memifrtp.FrameMeta{Width: st2110W, Height: st2110H, PixelFormat: memifrtp.FourCC("UYVY"),
			RTPTimestamp: uint32(i * 3600), Counter: uint64(i)}.Put(h[:], size)
		feed = append(append(feed, h[:]...), raw[i*size:(i+1)*size]...)
	}
	feedPath := filepath.Join(dir, "feed.memif")
	sdpPath := filepath.Join(dir, "in.sdp")
	if err := os.WriteFile(feedPath, feed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sdpPath, []byte(st2110SDP("127.0.0.1", 5004)), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "memif.sock")
	g := startGateway(t, fmt.Sprintf(`rtsp:
  listen: LISTEN
node:
  memif:
    socket: %s
    interfaces:
      - {id: 8, secret: s3cret, form: frames}
routes:
  in:
    source: memif://8
    sdp: %s
`, sock, sdpPath))
	bin := meshgwBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod := peertest.Run(ctx, t, bin, "memif", "-socket", sock, "-id", "8", "-secret", "s3cret",
		"-bsize", "65536", "-rsize", "6", "-feed", feedPath, "-rate", fmt.Sprint(st2110Rate))
	const read = 20
	var gstOut string
	for try := 0; ; try++ {
		gst := peertest.Run(ctx, t, "gst-launch-1.0", "rtspsrc", "location="+g.URL+"in", "protocols=tcp", "latency=200", "!",
			"rtpvrawdepay", "!", "identity", fmt.Sprintf("eos-after=%d", read), "!", "checksumsink", "hash=md5")
		err := gst.Wait(30 * time.Second)
		gstOut = gst.Output()
		if err == nil || try == 3 {
			break
		}
		time.Sleep(500 * time.Millisecond) // the producer may not have connected yet
	}
	m := checksumLine.FindAllStringSubmatch(gstOut, -1)
	if len(m) < read-1 {
		t.Fatalf("GStreamer RTSP reader decoded %d frames, want %d\n%s\nproducer:\n%s", len(m), read, tail(gstOut), prod.Output())
	}
	for _, l := range m[1:] {
		if _, ok := sums[l[1]]; !ok {
			t.Fatalf("the RTSP reader decoded a frame (MD5 %s) that is none of the source's", l[1])
		}
	}
	t.Logf("GStreamer RTSP reader: %d frames from the memif frame producer, all equal to source frames (first is frame %d)", len(m), sums[m[0][1]])
}
