package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/memif"
	"github.com/meshgw/meshgw/rtp/memifrtp"
)

// TestMemifToolFrames: `meshgw memif` consumes frames-form buffers and reports frames, their
// size and counter gaps.
func TestMemifToolFrames(t *testing.T) {
	m, err := memif.Listen(memif.Config{Socket: filepath.Join(t.TempDir(), "m.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ep, _ := m.Add(3, "k")
	o := memifrtp.NewFrameOut(ep, nil)
	defer o.Close()
	go func() {
		for deadline := time.Now().Add(10 * time.Second); !o.Connected() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		frame := make([]byte, 300000)
		for _, c := range []uint64{0, 1, 3} { // frame 2 lost
			o.WriteFrame(memifrtp.FrameMeta{Width: 640, Height: 480, Counter: c}, frame)
		}
	}()
	var out, errOut bytes.Buffer
	code := cmdMemif([]string{"-socket", m.Addr(), "-id", "3", "-secret", "k", "-count", "3", "-duration", "10s", "-bsize", "65535"}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "packets=3 ") || !strings.Contains(out.String(), "track0: packets=3 gaps=1 markers=0 frame_bytes=300000") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if code := cmdMemif([]string{"-socket", m.Addr(), "-id", "3", "-secret", "nope", "-duration", "5s"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "wrong secret") {
		t.Fatalf("wrong secret: exit %d\n%s", code, errOut.String())
	}
}
