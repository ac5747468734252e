package rtsp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// plainServer is a plain-RTSP server without auth whose read_timeout is long, so that a close
// well before it shows a fast path.
func plainServer(t *testing.T, limits Limits) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(ServerConfig{Listener: ln, Handler: refusingHandler{}, ReadTimeout: 30 * time.Second, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Close() })
	return s
}

// readUntilClosed reads what the server sends until it closes the connection, and how long that
// took; it fails the test if the server keeps the connection past the deadline.
func readUntilClosed(t *testing.T, nc net.Conn, within time.Duration) ([]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	_ = nc.SetReadDeadline(start.Add(within))
	b, err := io.ReadAll(nc)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", within)
		}
	}
	return b, time.Since(start)
}

// TestNotRTSPClosedAtOnce: a TLS ClientHello on the plain port is closed without an answer and
// other bytes that cannot begin a request get 400, both at once rather than after read_timeout
// (30 s here); the connection over the unauthenticated cap likewise.
func TestNotRTSPClosedAtOnce(t *testing.T) {
	s := plainServer(t, Limits{MaxUnauthConnsPerAddress: 1})
	addr := s.Addr().String()
	// The bound is generous for a loaded machine; the point is "not read_timeout".
	const within = 10 * time.Second

	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only the ClientHello matters
	_ = tc.SetDeadline(time.Now().Add(within))
	start := time.Now()
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS handshake with the plain port succeeded")
	} else if took := time.Since(start); took >= within {
		t.Errorf("ClientHello held %v (%v)", took, err)
	}
	tc.Close()

	for _, junk := range []string{"\x00\x01\x02", "\r\n\r\n", " OPTIONS * RTSP/1.0\r\n"} {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write([]byte(junk)); err != nil {
			t.Fatal(err)
		}
		b, _ := readUntilClosed(t, nc, within)
		if !bytes.HasPrefix(b, []byte("RTSP/1.0 400 ")) {
			t.Errorf("%q answered %q, want 400", junk, b)
		}
		nc.Close()
	}

	// one idle connection fills the address's cap; the next, idle too, is closed without waiting
	// read_timeout, and a ClientHello over the cap at once
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitFor(t, func() bool {
		s.lim.mu.Lock()
		defer s.lim.mu.Unlock()
		return s.lim.unauth == 1
	})
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if b, took := readUntilClosed(t, over, within); len(b) != 0 || took >= within {
		t.Errorf("idle connection over the cap: %q after %v", b, took)
	}
	over.Close()
	over, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := over.Write([]byte{tlsHandshakeByte, 3, 1, 0, 0x40}); err != nil {
		t.Fatal(err)
	}
	if b, _ := readUntilClosed(t, over, within); len(b) != 0 {
		t.Errorf("ClientHello over the cap answered %q", b)
	}
	over.Close()
	// and a real request over the cap still gets its 503
	over, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	if _, err := over.Write([]byte("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	var res base.Response
	_ = over.SetReadDeadline(time.Now().Add(within))
	if err := res.Unmarshal(bufio.NewReader(over)); err != nil || res.StatusCode != base.StatusServiceUnavailable {
		t.Errorf("request over the cap: %v %v, want 503", res.StatusCode, err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FuzzTokenChar checks the fast refusal against the full parser: a message whose first byte
// tokenChar refuses is never one readRequest accepts with a token method, so no request that
// would have been served is turned away.
func FuzzTokenChar(f *testing.F) {
	for _, s := range []string{
		"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", "\x16\x03\x01\x02\x00\x01", "GET / HTTP/1.1\r\n\r\n",
		"\r\nOPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", "x-Ext!1 rtsp://h/a RTSP/1.0\r\n\r\n", "(a) * RTSP/1.0\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || tokenChar(b[0]) {
			return
		}
		req, err := readRequest(bufio.NewReader(bytes.NewReader(b)), 1<<16, 64)
		if err != nil {
			return
		}
		for i := range len(req.Method) {
			if !tokenChar(req.Method[i]) {
				return // not a token: RFC 7826 does not allow it as a method either
			}
		}
		t.Fatalf("%q begins a request with method %q, but its first byte is refused", b, req.Method)
	})
}

// A handler's temporary refusal carries Retry-After in whole seconds, rounded up; other errors
// carry none.
func TestErrResponseRetryAfter(t *testing.T) {
	for _, c := range []struct {
		err  error
		want base.HeaderValue
	}{
		{&Error{Status: StatusServiceUnavailable, Msg: "busy", RetryAfter: 1500 * time.Millisecond}, base.HeaderValue{"2"}},
		{&Error{Status: StatusServiceUnavailable, RetryAfter: time.Millisecond}, base.HeaderValue{"1"}},
		{&Error{Status: StatusServiceUnavailable, Msg: "busy"}, nil},
		{errors.New("plain"), nil},
	} {
		res := errResponse(c.err)
		if got := res.Header["Retry-After"]; len(got) != len(c.want) || len(got) > 0 && got[0] != c.want[0] {
			t.Errorf("errResponse(%v): Retry-After %q, want %q", c.err, got, c.want)
		}
	}
}
