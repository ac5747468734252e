package rtsp

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// TestStopAccepting: after StopAccepting a connection already here is still answered and counted,
// a new one is not accepted, and Close afterwards is clean.
func TestStopAccepting(t *testing.T) {
	s := plainServer(t, Limits{})
	addr := s.Addr().String()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	options := func(cseq string) string {
		t.Helper()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write([]byte("OPTIONS rtsp://" + addr + "/ RTSP/1.0\r\nCSeq: " + cseq + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		for { // skip the headers
			h, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if h == "\r\n" {
				break
			}
		}
		return strings.TrimSpace(line)
	}
	if got := options("1"); got != "RTSP/1.0 200 OK" {
		t.Fatalf("before: %q", got)
	}
	s.StopAccepting()
	if got := options("2"); got != "RTSP/1.0 200 OK" {
		t.Fatalf("after StopAccepting the open connection got %q", got)
	}
	if n := s.ConnCount(); n != 1 {
		t.Errorf("ConnCount %d, want 1", n)
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		c.Close()
		t.Errorf("a new connection was accepted after StopAccepting")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after StopAccepting: %v", err)
	}
}
