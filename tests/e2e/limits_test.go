package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// limitsConfig has small caps so each limit is reached with a handful of connections.
const limitsConfig = `rtsp:
  listen: LISTEN
  read_timeout: 2s
  max_request_bytes: 4096
  max_request_headers: 12
  max_unauthenticated: 40
  max_unauthenticated_per_address: 4
  max_sessions: 4
  max_sessions_per_route: 2
  max_sessions_per_address: 2
routes:
  demo: {source: demo}
  demo2: {source: demo}
  demo3: {source: demo}
`

// setupReq is an interleaved SETUP of a route's first track, which creates a session.
func setupReq(base, route string) string {
	return "SETUP " + base + route + "/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
}

// TestLimitsStatuses reaches each limit and checks its status: 503 with Retry-After for the
// unauthenticated-connection cap (other addresses unaffected), 453 for each session cap, 400 for
// too many header lines, 413 for a large body, and the closing of idle and trickling connections.
func TestLimitsStatuses(t *testing.T) {
	g := startGateway(t, limitsConfig)
	host := hostOf(g)

	t.Run("unauthenticated", func(t *testing.T) {
		var idle []*protoConn
		for range 4 {
			idle = append(idle, dialFrom(t, host, "127.0.0.31"))
		}
		over := dialFrom(t, host, "127.0.0.31")
		r := over.expect("OPTIONS "+g.URL+" RTSP/1.0\r\nCSeq: 1\r\n\r\n", 503)
		if r.get("Retry-After") == "" || !strings.Contains(r.reason, "unauthenticated") {
			t.Errorf("over the cap: %d %q, Retry-After %q", r.status, r.reason, r.get("Retry-After"))
		}
		if _, closed := over.closedWithin(5 * time.Second); !closed {
			t.Error("refused connection left open")
		}
		dialFrom(t, host, "127.0.0.32").expect("OPTIONS "+g.URL+" RTSP/1.0\r\nCSeq: 1\r\n\r\n", 200)
		// an idle connection without a session is closed after read_timeout, freeing its slot
		for i, c := range idle {
			if _, closed := c.closedWithin(10 * time.Second); !closed {
				t.Errorf("idle connection %d still open", i)
			}
		}
		dialFrom(t, host, "127.0.0.31").expect("OPTIONS "+g.URL+" RTSP/1.0\r\nCSeq: 1\r\n\r\n", 200)
	})

	t.Run("sessions", func(t *testing.T) {
		a := "127.0.0.33"
		b := "127.0.0.34"
		check := func(from, route string, status int, reason string) {
			t.Helper()
			r := dialFrom(t, host, from).expect(setupReq(g.URL, route), status)
			if reason != "" && !strings.Contains(r.reason, reason) {
				t.Errorf("SETUP %s from %s: reason %q, want %q", route, from, r.reason, reason)
			}
		}
		check(a, "demo", 200, "")
		check(a, "demo2", 200, "")
		check(a, "demo3", 453, "max_sessions_per_address")
		check(b, "demo", 200, "")
		check(b, "demo", 453, "max_sessions_per_route")
		check(b, "demo2", 200, "")
		check("127.0.0.35", "demo3", 453, "rtsp.max_sessions")
		if n := g.RTSP.SessionCount(); n != 4 {
			t.Errorf("%d sessions, want 4", n)
		}
	})

	t.Run("headers", func(t *testing.T) {
		c := dialFrom(t, host, "127.0.0.36")
		var b strings.Builder
		b.WriteString("OPTIONS " + g.URL + " RTSP/1.0\r\nCSeq: 1\r\n")
		for i := range 12 {
			fmt.Fprintf(&b, "X-Pad-%d: x\r\n", i)
		}
		c.expect(b.String()+"\r\n", 400)
		if _, closed := c.closedWithin(5 * time.Second); !closed {
			t.Error("connection left open after too many headers")
		}
		ok := dialFrom(t, host, "127.0.0.36")
		ok.expect("OPTIONS "+g.URL+" RTSP/1.0\r\nCSeq: 1\r\nX-A: 1\r\n\r\n", 200)
	})

	t.Run("body", func(t *testing.T) {
		c := dialFrom(t, host, "127.0.0.37")
		c.expect("ANNOUNCE "+g.URL+"demo RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: 100000\r\n\r\n", 413)
	})

	t.Run("slowloris", func(t *testing.T) {
		c := dialFrom(t, host, "127.0.0.38")
		req := "OPTIONS " + g.URL + " RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: " + strings.Repeat("s", 200) + "\r\n\r\n"
		sent, err := trickle(context.Background(), c.nc, req, 50*time.Millisecond)
		if err == nil {
			t.Fatalf("the whole %d-byte request trickled in without the server cutting it", len(req))
		}
		// the request needs 12 s at this pace; read_timeout is 2 s
		if sent >= len(req)/2 {
			t.Errorf("server let %d of %d trickled bytes in", sent, len(req))
		}
		t.Logf("cut after %d of %d bytes", sent, len(req))
	})
}

// trickle writes s one byte per gap until it is all sent (nil error) or the connection fails.
func trickle(ctx context.Context, nc net.Conn, s string, gap time.Duration) (int, error) {
	for i := range len(s) {
		_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write([]byte{s[i]}); err != nil {
			return i, err
		}
		select {
		case <-ctx.Done():
			return i, ctx.Err()
		case <-time.After(gap):
		}
		// a peer that closed shows as a readable EOF before writes start failing
		_ = nc.SetReadDeadline(time.Now().Add(time.Millisecond))
		var b [1]byte
		if _, err := nc.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return i + 1, err
		}
	}
	return len(s), nil
}

// TestLimitsSlowlorisAndFloodDoNotStopReaders runs ffmpeg readers while one address trickles
// requests byte by byte on many connections and another floods idle (half-open) connections;
// the readers must play, and the abusive connections must be cut or refused.
func TestLimitsSlowlorisAndFloodDoNotStopReaders(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	g := startGateway(t, `rtsp:
  listen: LISTEN
  read_timeout: 2s
  max_unauthenticated: 64
  max_unauthenticated_per_address: 8
routes:
  demo: {source: demo}
`)
	host := hostOf(g)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var cut, refused, flooded atomic.Int64
	dial := func(local string) (net.Conn, error) {
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return d.DialContext(ctx, "tcp", host)
	}
	// slow-loris: 16 connections trickling a long request, reconnecting when cut
	req := "DESCRIBE " + g.URL + "demo RTSP/1.0\r\nCSeq: 1\r\nX-Slow: " + strings.Repeat("z", 4000) + "\r\n\r\n"
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				nc, err := dial("127.0.0.41")
				if err != nil {
					continue
				}
				if _, err := trickle(ctx, nc, req, 100*time.Millisecond); err != nil && ctx.Err() == nil {
					cut.Add(1)
				}
				nc.Close()
			}
		}()
	}
	// flood: keep up to 300 idle connections open from another address
	wg.Add(1)
	go func() {
		defer wg.Done()
		var open []net.Conn
		defer func() {
			for _, c := range open {
				c.Close()
			}
		}()
		for ctx.Err() == nil {
			// drop the ones the server closed
			kept := open[:0]
			for _, c := range open {
				_ = c.SetReadDeadline(time.Now().Add(time.Microsecond))
				var b [1]byte
				if _, err := c.Read(b[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					refused.Add(1)
					c.Close()
					continue
				}
				kept = append(kept, c)
			}
			open = kept
			for n := 0; n < 10 && len(open) < 300 && ctx.Err() == nil; n++ { // at most ~200 dials/s
				c, err := dial("127.0.0.42")
				if err != nil {
					break
				}
				flooded.Add(1)
				open = append(open, c)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	time.Sleep(time.Second) // let the abuse build up before the readers come

	var readers []*peertest.Proc
	for _, tr := range []string{"udp", "tcp"} {
		readers = append(readers, peertest.Run(context.Background(), t, "ffmpeg", playFFmpegArgs(tr, g.URL+"demo", 6)...))
	}
	for i, tr := range []string{"udp", "tcp"} {
		playCheckFFmpeg(t, "ffmpeg "+tr+" under slow-loris and flood", readers[i], 60*time.Second, 100) // 150 frames less up to a GOP (25) before the first keyframe, less slack
		n, _ := peertest.FFmpegFrames(readers[i].Output())
		t.Logf("ffmpeg %s decoded %d frames in 6 s under the abuse", tr, n)
	}
	cancel()
	wg.Wait()
	t.Logf("slow-loris connections cut: %d; flood connections opened %d, closed by the server %d", cut.Load(), flooded.Load(), refused.Load())
	if cut.Load() < 16 {
		t.Errorf("only %d slow-loris connections were cut", cut.Load())
	}
	if refused.Load() == 0 {
		t.Error("no flood connection was closed by the server")
	}
}
