package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
)

// protoConfig has short limits so the protocol tests see them quickly.
const protoConfig = `rtsp:
  listen: LISTEN
  read_timeout: 2s
  session_timeout: 2s
  max_request_bytes: 4096
  protocols: [udp, tcp]
routes:
  demo:
    source: demo
`

// protoResp is one RTSP response as read off the wire.
type protoResp struct {
	status int
	reason string
	header map[string]string   // canonical keys as sent, looked up case-insensitively by get
	multi  map[string][]string // every value of repeated headers, by lower-case key
	body   string
}

func (r *protoResp) get(k string) string {
	for hk, v := range r.header {
		if strings.EqualFold(hk, k) {
			return v
		}
	}
	return ""
}

// protoConn is a hand-driven RTSP connection.
type protoConn struct {
	t    testing.TB
	nc   net.Conn
	br   *bufio.Reader
	host string // host:port of the gateway
}

func protoDial(t testing.TB, g *gw) *protoConn {
	t.Helper()
	host := strings.TrimSuffix(strings.TrimPrefix(g.URL, "rtsp://"), "/")
	nc, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &protoConn{t: t, nc: nc, br: bufio.NewReader(nc), host: host}
}

func (c *protoConn) send(s string) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads one response (skipping interleaved frames) within timeout.
func (c *protoConn) read(timeout time.Duration) (*protoResp, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		b, err := c.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] != '$' {
			break
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
			return nil, err
		}
		if _, err := c.br.Discard(int(hdr[2])<<8 | int(hdr[3])); err != nil {
			return nil, err
		}
	}
	line, err := c.br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	f := strings.SplitN(strings.TrimRight(line, "\r\n"), " ", 3)
	if len(f) < 2 || f[0] != "RTSP/1.0" {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	r := &protoResp{header: map[string]string{}, multi: map[string][]string{}}
	if r.status, err = strconv.Atoi(f[1]); err != nil {
		return nil, fmt.Errorf("bad status line %q", line)
	}
	if len(f) == 3 {
		r.reason = f[2]
	}
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", l)
		}
		r.header[strings.TrimSpace(k)] = strings.TrimSpace(v)
		r.multi[strings.ToLower(strings.TrimSpace(k))] = append(r.multi[strings.ToLower(strings.TrimSpace(k))], strings.TrimSpace(v))
	}
	if cl := r.get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > 1<<20 {
			return nil, fmt.Errorf("bad Content-Length %q", cl)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(c.br, b); err != nil {
			return nil, err
		}
		r.body = string(b)
	}
	return r, nil
}

// do sends a request and returns its response, failing the test when none comes.
func (c *protoConn) do(req string) *protoResp {
	c.t.Helper()
	c.send(req)
	r, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("no response to %q: %v", protoFirstLine(req), err)
	}
	return r
}

// expect sends a request and checks the status.
func (c *protoConn) expect(req string, status int) *protoResp {
	c.t.Helper()
	c.send(req)
	r, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Errorf("%q: no response (want %d): %v", protoFirstLine(req), status, err)
		return &protoResp{header: map[string]string{}}
	}
	if r.status != status {
		c.t.Errorf("%q: got %d %s, want %d", protoFirstLine(req), r.status, r.reason, status)
	}
	return r
}

// closedWithin checks that the server closes the connection within timeout (data before the end
// is skipped) and returns how long that took.
func (c *protoConn) closedWithin(timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	_ = c.nc.SetReadDeadline(start.Add(timeout))
	_, err := io.Copy(io.Discard, c.br)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return time.Since(start), true // EOF (err == nil) or reset
	}
	return time.Since(start), false
}

func protoFirstLine(req string) string {
	l, _, _ := strings.Cut(req, "\r\n")
	return l
}

// protoUDPPair binds an even/odd UDP port pair on loopback for a raw UDP reader.
func protoUDPPair(t testing.TB) (rtp, rtcp *net.UDPConn) {
	t.Helper()
	for range 100 {
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if a.LocalAddr().(*net.UDPAddr).Port%2 != 0 {
			a.Close()
			continue
		}
		b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: a.LocalAddr().(*net.UDPAddr).Port + 1})
		if err != nil {
			a.Close()
			continue
		}
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}
	t.Fatal("no free UDP port pair")
	return nil, nil
}

// protoUDPCounter counts RTP packets arriving on a socket and remembers when the last came.
type protoUDPCounter struct {
	mu   sync.Mutex
	n    int
	last time.Time
	done chan struct{}
}

func protoCountUDP(t testing.TB, c *net.UDPConn) *protoUDPCounter {
	u := &protoUDPCounter{done: make(chan struct{})}
	go func() {
		defer close(u.done)
		buf := make([]byte, 2048)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if n >= 12 && buf[0]>>6 == 2 {
				u.mu.Lock()
				u.n++
				u.last = time.Now()
				u.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-u.done })
	return u
}

func (u *protoUDPCounter) get() (int, time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n, u.last
}

// waitN waits until n packets arrived.
func (u *protoUDPCounter) waitN(n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, _ := u.get(); c >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// waitQuiet waits until no packet arrived for quiet, and returns when the last one came; false
// if packets kept coming until timeout.
func (u *protoUDPCounter) waitQuiet(quiet, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, last := u.get()
		if time.Since(last) >= quiet {
			return last, true
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, last := u.get()
	return last, false
}

// setupUDP runs SETUP (video track, UDP to the pair) + PLAY on c and returns the session id.
func (c *protoConn) setupUDPPlay(rtpc *net.UDPConn) string {
	c.t.Helper()
	port := rtpc.LocalAddr().(*net.UDPAddr).Port
	r := c.expect(fmt.Sprintf("SETUP rtsp://%s/demo/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=%d-%d\r\n\r\n", c.host, port, port+1), 200)
	id, _, _ := strings.Cut(r.get("Session"), ";")
	if id == "" {
		c.t.Fatalf("SETUP gave no session: %v", r.header)
	}
	c.expect(fmt.Sprintf("PLAY rtsp://%s/demo/ RTSP/1.0\r\nCSeq: 2\r\nSession: %s\r\n\r\n", c.host, id), 200)
	return id
}

// TestProtocolErrors checks the status of each malformed or refused request, by hand over TCP.
func TestProtocolErrors(t *testing.T) {
	g := startGateway(t, protoConfig)
	h := strings.TrimSuffix(strings.TrimPrefix(g.URL, "rtsp://"), "/")
	u := "rtsp://" + h + "/demo"

	t.Run("OPTIONS", func(t *testing.T) {
		r := protoDial(t, g).expect("OPTIONS "+u+" RTSP/1.0\r\nCSeq: 7\r\n\r\n", 200)
		if r.get("CSeq") != "7" {
			t.Errorf("CSeq %q, want 7", r.get("CSeq"))
		}
		pub := r.get("Public")
		for _, m := range []string{"OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "ANNOUNCE", "RECORD"} {
			if !strings.Contains(pub, m) {
				t.Errorf("Public %q lacks %s", pub, m)
			}
		}
	})
	t.Run("request URI *", func(t *testing.T) {
		c := protoDial(t, g)
		c.expect("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", 200)
		for i, m := range []string{"DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "ANNOUNCE", "RECORD"} {
			c.expect(m+" * RTSP/1.0\r\nCSeq: "+strconv.Itoa(i+2)+"\r\n\r\n", 400)
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		protoDial(t, g).expect("DESCRIBE rtsp://"+h+"/nope RTSP/1.0\r\nCSeq: 1\r\n\r\n", 404)
	})
	t.Run("unknown method", func(t *testing.T) {
		c := protoDial(t, g)
		c.expect("FOO "+u+" RTSP/1.0\r\nCSeq: 1\r\n\r\n", 501)
		c.expect("OPTIONS "+u+" RTSP/1.0\r\nCSeq: 2\r\n\r\n", 200) // the connection survives
	})
	t.Run("missing CSeq", func(t *testing.T) {
		c := protoDial(t, g)
		c.expect("OPTIONS "+u+" RTSP/1.0\r\n\r\n", 400)
		c.expect("OPTIONS "+u+" RTSP/1.0\r\nCSeq: 2\r\n\r\n", 200)
	})
	t.Run("header too large", func(t *testing.T) {
		c := protoDial(t, g)
		c.expect("OPTIONS "+u+" RTSP/1.0\r\nCSeq: 1\r\nX-Pad: "+strings.Repeat("a", 5000)+"\r\n\r\n", 400)
		if d, ok := c.closedWithin(3 * time.Second); !ok {
			t.Errorf("connection still open %v after the 400", d)
		}
	})
	t.Run("many headers too large", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("OPTIONS " + u + " RTSP/1.0\r\nCSeq: 1\r\n")
		for i := range 200 {
			fmt.Fprintf(&b, "X-H%d: %s\r\n", i, strings.Repeat("b", 20))
		}
		b.WriteString("\r\n")
		protoDial(t, g).expect(b.String(), 400)
	})
	t.Run("body too large", func(t *testing.T) {
		c := protoDial(t, g)
		c.expect("ANNOUNCE "+u+" RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 10000\r\n\r\n", 413)
		if d, ok := c.closedWithin(3 * time.Second); !ok {
			t.Errorf("connection still open %v after the 413", d)
		}
	})
	t.Run("multicast not offered", func(t *testing.T) {
		protoDial(t, g).expect("SETUP "+u+"/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;multicast\r\n\r\n", 461)
	})
	t.Run("unknown transport", func(t *testing.T) {
		protoDial(t, g).expect("SETUP "+u+"/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: FOO\r\n\r\n", 461)
	})
	t.Run("PLAY unknown session", func(t *testing.T) {
		protoDial(t, g).expect("PLAY "+u+" RTSP/1.0\r\nCSeq: 1\r\nSession: nonexistent\r\n\r\n", 454)
	})
	t.Run("PLAY without session", func(t *testing.T) {
		protoDial(t, g).expect("PLAY "+u+" RTSP/1.0\r\nCSeq: 1\r\n\r\n", 454)
	})
	t.Run("PLAY another connection's session", func(t *testing.T) {
		rtpc, _ := protoUDPPair(t)
		port := rtpc.LocalAddr().(*net.UDPAddr).Port
		a := protoDial(t, g)
		r := a.expect(fmt.Sprintf("SETUP %s/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=%d-%d\r\n\r\n", u, port, port+1), 200)
		id, _, _ := strings.Cut(r.get("Session"), ";")
		b := protoDial(t, g)
		if r := b.do("PLAY " + u + " RTSP/1.0\r\nCSeq: 1\r\nSession: " + id + "\r\n\r\n"); r.status < 400 {
			t.Errorf("PLAY of a session set up on another connection: %d %s", r.status, r.reason)
		}
	})
	t.Run("destination elsewhere", func(t *testing.T) {
		protoDial(t, g).expect("SETUP "+u+"/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;destination=10.99.200.7;client_port=40000-40001\r\n\r\n", 463)
	})
	t.Run("ANNOUNCE to demo", func(t *testing.T) {
		sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
		protoDial(t, g).expect(fmt.Sprintf("ANNOUNCE %s RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", u, len(sdp), sdp), 405)
	})
	t.Run("SETUP missing track", func(t *testing.T) {
		protoDial(t, g).expect("SETUP "+u+"/trackID=9 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n", 404)
	})
	t.Run("DESCRIBE", func(t *testing.T) {
		r := protoDial(t, g).expect("DESCRIBE "+u+" RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n", 200)
		for _, want := range []string{"m=video", "H264/90000", "m=audio", "a=control:trackID=0", "a=control:trackID=1"} {
			if !strings.Contains(r.body, want) {
				t.Errorf("SDP lacks %q:\n%s", want, r.body)
			}
		}
	})
	t.Run("GET_PARAMETER keepalive", func(t *testing.T) {
		rtpc, _ := protoUDPPair(t)
		c := protoDial(t, g)
		id := c.setupUDPPlay(rtpc)
		r := c.expect("GET_PARAMETER "+u+" RTSP/1.0\r\nCSeq: 3\r\nSession: "+id+"\r\n\r\n", 200)
		if got, _, _ := strings.Cut(r.get("Session"), ";"); got != id {
			t.Errorf("GET_PARAMETER Session %q, want %q", r.get("Session"), id)
		}
		c.expect("TEARDOWN "+u+" RTSP/1.0\r\nCSeq: 4\r\nSession: "+id+"\r\n\r\n", 200)
		c.expect("GET_PARAMETER "+u+" RTSP/1.0\r\nCSeq: 5\r\nSession: "+id+"\r\n\r\n", 454)
	})
}

// TestProtocolGarbageClosesOnlyThatConnection: a garbage request line gets 400 and its connection
// ends, while a player on another connection goes on.
func TestProtocolGarbageClosesOnlyThatConnection(t *testing.T) {
	g := startGateway(t, protoConfig)
	r := startPlayReader(t, "go-tcp", g.URL+"demo", gortsplib.TransportTCP)
	if !r.waitCount(20, 5*time.Second) {
		t.Fatalf("reader got only %d packets", r.count())
	}
	c := protoDial(t, g)
	c.expect("\x01\x02 this is not rtsp at all\r\n\r\n", 400)
	if d, ok := c.closedWithin(3 * time.Second); !ok {
		t.Errorf("connection still open %v after the garbage", d)
	}
	playStillFlowing(t, r, 50, 3*time.Second)
}

// TestProtocolSlowloris: a request trickling in one byte per 500 ms is cut after read_timeout (2 s)
// while a player goes on.
func TestProtocolSlowloris(t *testing.T) {
	g := startGateway(t, protoConfig)
	r := startPlayReader(t, "go-udp", g.URL+"demo", gortsplib.TransportUDP)
	if !r.waitCount(20, 5*time.Second) {
		t.Fatalf("reader got only %d packets", r.count())
	}
	c := protoDial(t, g)
	req := "OPTIONS " + g.URL + "demo RTSP/1.0\r\nCSeq: 1\r\n\r\n"
	stop := make(chan struct{})
	wrote := make(chan int, 1)
	go func() {
		n := 0
		defer func() { wrote <- n }()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for i := range len(req) {
			if _, err := c.nc.Write([]byte{req[i]}); err != nil {
				return
			}
			n++
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	d, ok := c.closedWithin(8 * time.Second)
	close(stop)
	n := <-wrote
	if !ok {
		t.Fatalf("slow connection still open after %v (%d bytes sent)", d, n)
	}
	t.Logf("slow connection cut after %v, %d of %d bytes sent", d.Round(time.Millisecond), n, len(req))
	if d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("cut after %v, want about read_timeout (2 s)", d)
	}
	playStillFlowing(t, r, 50, 3*time.Second)
}

// TestProtocolSessionTimeout: a UDP reader that keeps its RTSP connection open but sends neither
// requests nor RTCP is dropped after session_timeout (2 s); one that sends keepalives is not; one
// that closes its connection without TEARDOWN stops getting packets at once.
func TestProtocolSessionTimeout(t *testing.T) {
	g := startGateway(t, protoConfig)

	// three readers at once, to keep the test short
	silentRTP, _ := protoUDPPair(t)
	aliveRTP, _ := protoUDPPair(t)
	closerRTP, _ := protoUDPPair(t)
	silent, alive, closer := protoCountUDP(t, silentRTP), protoCountUDP(t, aliveRTP), protoCountUDP(t, closerRTP)

	sc := protoDial(t, g)
	sc.setupUDPPlay(silentRTP)
	played := time.Now()

	// the alive reader keeps its session with GET_PARAMETER every 700 ms
	ac := protoDial(t, g)
	aliveID := ac.setupUDPPlay(aliveRTP)
	stopKeep := make(chan struct{})
	keepDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(700 * time.Millisecond)
		defer tick.Stop()
		for i := 3; ; i++ {
			select {
			case <-stopKeep:
				keepDone <- nil
				return
			case <-tick.C:
			}
			_ = ac.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := fmt.Fprintf(ac.nc, "GET_PARAMETER %sdemo RTSP/1.0\r\nCSeq: %d\r\nSession: %s\r\n\r\n", g.URL, i, aliveID); err != nil {
				keepDone <- err
				return
			}
			r, err := ac.read(2 * time.Second)
			if err != nil || r.status != 200 {
				keepDone <- fmt.Errorf("keepalive %d: %v %v", i, r, err)
				return
			}
		}
	}()

	cc := protoDial(t, g)
	cc.setupUDPPlay(closerRTP)

	for name, u := range map[string]*protoUDPCounter{"silent": silent, "alive": alive, "closer": closer} {
		if !u.waitN(20, 3*time.Second) {
			n, _ := u.get()
			t.Fatalf("%s reader: only %d RTP packets after PLAY", name, n)
		}
	}

	// the closer hangs up without TEARDOWN
	closed := time.Now()
	cc.nc.Close()
	if last, ok := closer.waitQuiet(500*time.Millisecond, 3*time.Second); !ok {
		t.Errorf("closed reader: packets still arriving 3 s after the connection closed")
	} else if d := last.Sub(closed); d > 500*time.Millisecond {
		t.Errorf("closed reader: packets kept coming for %v after the connection closed", d)
	}

	last, ok := silent.waitQuiet(time.Second, 8*time.Second)
	if !ok {
		t.Errorf("silent reader: packets still arriving 8 s after PLAY (session_timeout is 2 s)")
	} else {
		d := last.Sub(played)
		t.Logf("silent reader: last packet %v after PLAY", d.Round(time.Millisecond))
		if d < 1500*time.Millisecond || d > 4500*time.Millisecond {
			t.Errorf("silent reader dropped %v after PLAY, want about session_timeout (2 s)", d)
		}
		n0, _ := silent.get()
		time.Sleep(time.Second)
		if n1, _ := silent.get(); n1 != n0 {
			t.Errorf("silent reader: %d packets after it went quiet", n1-n0)
		}
	}
	if d, ok := sc.closedWithin(2 * time.Second); !ok {
		t.Errorf("silent reader's connection still open %v after its session ended", d)
	}

	// by now the alive reader has outlived session_timeout twice
	if since := time.Since(played); since < 4*time.Second {
		time.Sleep(4*time.Second - since)
	}
	n0, _ := alive.get()
	if !alive.waitN(n0+20, 2*time.Second) {
		t.Errorf("reader with keepalives stopped receiving %v after PLAY", time.Since(played).Round(time.Millisecond))
	}
	close(stopKeep)
	if err := <-keepDone; err != nil {
		t.Errorf("keepalive: %v", err)
	}
}

// protoFuzzRequest builds one malformed or odd request from rng.
func protoFuzzRequest(rng *rand.Rand, host string) []byte {
	methods := []string{"OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER", "SET_PARAMETER",
		"ANNOUNCE", "RECORD", "REDIRECT", "GET", "POST", "FOO", "", "options", "SETUP SETUP", "\x00"}
	urls := []string{"rtsp://" + host + "/demo", "rtsp://" + host + "/demo/trackID=0", "rtsp://" + host + "/demo/trackID=-1",
		"rtsp://" + host + "/demo/trackID=99999999999", "*", "/", "rtsp://", "rtsp://" + host + "/../../etc/passwd",
		"rtsp://" + host + "/%zz", "rtsp://[::1", "http://" + host + "/demo", "rtsp://" + host + "/" + strings.Repeat("x", 3000),
		"rtsp://" + host + "/demo?a=b&c", ""}
	headers := []string{"CSeq: 1", "CSeq: -1", "CSeq: 99999999999999999999", "CSeq: x", "CSeq:", "CSeq: 1\r\nCSeq: 2",
		"Session: ", "Session: ;;;", "Session: " + strings.Repeat("s", 500), "Session: abc;timeout=-5",
		"Transport: RTP/AVP;unicast;client_port=0-0", "Transport: RTP/AVP;unicast;client_port=70000-70001",
		"Transport: RTP/AVP;unicast;client_port=5000", "Transport: RTP/AVP/TCP;unicast;interleaved=255-256",
		"Transport: RTP/AVP/TCP;unicast;interleaved=9-3", "Transport: RTP/AVP;multicast;destination=239.1.1.1",
		"Transport: RTP/AVP;unicast;source=evil.example;client_port=5000-5001", "Transport: ,,,,", "Transport: RTP/SAVP;unicast;client_port=5000-5001",
		"Content-Length: -1", "Content-Length: abc", "Content-Length: 99999999999999999999", "Content-Length: 3",
		"Content-Type: application/sdp", "Range: npt=abc-", "Range: clock=", "Authorization: Basic ???",
		"Accept: */*", ": empty name", "no colon here", "X-Long: " + strings.Repeat("l", 1000), "\tfolded", "Require: implicit-play"}
	junk := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	switch rng.IntN(8) {
	case 0: // raw random bytes
		return junk(1 + rng.IntN(300))
	case 1: // interleaved frame out of nowhere, possibly truncated
		n := rng.IntN(2000)
		b := []byte{'$', byte(rng.IntN(256)), byte(n >> 8), byte(n)}
		return append(b, junk(rng.IntN(n+1))...)
	case 2: // a valid request with bytes flipped
		b := []byte("SETUP rtsp://" + host + "/demo/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n")
		for range 1 + rng.IntN(5) {
			b[rng.IntN(len(b))] = byte(rng.IntN(256))
		}
		return b
	case 3: // SDP-ish body with a wrong Content-Length
		body := "v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" + string(junk(rng.IntN(50)))
		return fmt.Appendf(nil, "ANNOUNCE rtsp://%s/demo RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
			host, len(body)+rng.IntN(20)-10, body)
	case 4: // bare line endings and odd versions
		return []byte([]string{"\r\n\r\n", "\n\n", "OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n", "OPTIONS * HTTP/1.1\r\n\r\n",
			"OPTIONS * RTSP/1.0\nCSeq: 1\n\n", "OPTIONS\r\n\r\n", "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"}[rng.IntN(7)])
	}
	// a request built from random parts
	var b strings.Builder
	b.WriteString(methods[rng.IntN(len(methods))] + " " + urls[rng.IntN(len(urls))] + " RTSP/1.0\r\n")
	for range rng.IntN(6) {
		b.WriteString(headers[rng.IntN(len(headers))] + "\r\n")
	}
	if rng.IntN(4) > 0 {
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// TestProtocolFuzzRobustness sends 200 random or malformed requests, each on a fresh connection;
// a player on its own connection must keep receiving throughout and the gateway must still answer.
func TestProtocolFuzzRobustness(t *testing.T) {
	g := startGateway(t, protoConfig)
	host := strings.TrimSuffix(strings.TrimPrefix(g.URL, "rtsp://"), "/")
	r := startPlayReader(t, "go-tcp", g.URL+"demo", gortsplib.TransportTCP)
	if !r.waitCount(20, 5*time.Second) {
		t.Fatalf("reader got only %d packets", r.count())
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MESHGW_FUZZ_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (MESHGW_FUZZ_SEED=%d repeats this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x6d657368))
	const n = 200
	reqs := make([][]byte, n)
	for i := range reqs {
		reqs[i] = protoFuzzRequest(rng, host)
	}
	statuses := map[string]int{}
	var mu sync.Mutex
	var dialErrs int
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			for req := range work {
				nc, err := net.DialTimeout("tcp", host, 2*time.Second)
				if err != nil {
					mu.Lock()
					dialErrs++
					mu.Unlock()
					continue
				}
				_ = nc.SetDeadline(time.Now().Add(300 * time.Millisecond))
				_, _ = nc.Write(req)
				k, _ := io.ReadAtLeast(nc, buf, 12)
				nc.Close()
				st := "none"
				if k >= 12 && strings.HasPrefix(string(buf[:k]), "RTSP/1.0 ") {
					st = string(buf[9:12])
				}
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}
		}()
	}
	before := r.count()
	for _, req := range reqs {
		work <- req
	}
	close(work)
	wg.Wait()
	t.Logf("responses by status: %v; reader got %d packets meanwhile", statuses, r.count()-before)
	if dialErrs > 0 {
		t.Errorf("%d connections refused during the run", dialErrs)
	}
	if statuses["500"] > 0 {
		t.Errorf("%d requests got 500 Internal Server Error", statuses["500"])
	}
	playStillFlowing(t, r, 50, 3*time.Second)
	protoDial(t, g).expect("OPTIONS "+g.URL+"demo RTSP/1.0\r\nCSeq: 1\r\n\r\n", 200)
	r2 := startPlayReader(t, "go-udp-after", g.URL+"demo", gortsplib.TransportUDP)
	if !r2.waitCount(50, 5*time.Second) {
		t.Errorf("a new reader after the fuzzing got only %d packets", r2.count())
	}
}
