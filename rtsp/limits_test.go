package rtsp

import (
	"bufio"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestLimiterSessions(t *testing.T) {
	l := newLimiter(Limits{MaxSessions: 3, MaxSessionsPerRoute: 2, MaxSessionsPerAddress: 2})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	r1, why := l.reserveSession("x", a)
	if why != "" {
		t.Fatal(why)
	}
	if _, why := l.reserveSession("y", a); why != "" {
		t.Fatal(why)
	}
	if _, why := l.reserveSession("z", a); !strings.Contains(why, "per_address") {
		t.Errorf("third from one address: %q", why)
	}
	if _, why := l.reserveSession("x", b); why != "" {
		t.Fatal(why)
	}
	if _, why := l.reserveSession("z", b); !strings.Contains(why, "max_sessions ") && !strings.Contains(why, "(rtsp.max_sessions)") {
		t.Errorf("fourth overall: %q", why)
	}
	r1()
	r1() // releasing twice frees one slot only
	if _, why := l.reserveSession("x", b); why != "" {
		t.Errorf("after a release: %q", why)
	}
	if _, why := l.reserveSession("z", b); why == "" {
		t.Error("a double release freed two slots")
	}
}

func TestLimiterUnauthenticated(t *testing.T) {
	l := newLimiter(Limits{MaxUnauthConns: 3, MaxUnauthConnsPerAddress: 2})
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	for _, x := range []netip.Addr{a, a, b} {
		if why, _ := l.admit(x); why != "" {
			t.Fatal(why)
		}
	}
	if why, answer := l.admit(a); !strings.Contains(why, "per_address") || !answer {
		t.Errorf("third from a: %q %v", why, answer)
	}
	if why, _ := l.admit(c); !strings.Contains(why, "rtsp.max_unauthenticated)") {
		t.Errorf("fourth overall: %q", why)
	}
	l.authenticated(a)
	if why, _ := l.admit(c); why != "" {
		t.Errorf("after one authenticated: %q", why)
	}
	// refusals answered are bounded; beyond the budget connections are just closed
	answered := 0
	for range 100 {
		if _, answer := l.admit(c); answer {
			answered++
		}
	}
	if answered != 14 {
		t.Errorf("%d more refusals answered at once, want 14 (the budget of 16 less the two above)", answered)
	}
	l.rejectDone()
	if _, answer := l.admit(c); !answer {
		t.Error("budget not returned")
	}
	now := time.Now()
	if ok, _ := l.logRefusal(now); !ok {
		t.Error("first refusal not logged")
	}
	l.logRefusal(now.Add(time.Millisecond))
	if ok, n := l.logRefusal(now.Add(2 * time.Second)); !ok || n != 1 {
		t.Errorf("log after a second: %v, %d suppressed", ok, n)
	}
}

func TestReadRequestHeaderLimit(t *testing.T) {
	req := "OPTIONS rtsp://h/x RTSP/1.0\r\nCSeq: 1\r\nA: 1\r\nB: 2\r\n\r\n"
	if _, err := readRequest(bufio.NewReader(strings.NewReader(req)), 4096, 3); err != nil {
		t.Errorf("3 headers with a limit of 3: %v", err)
	}
	if _, err := readRequest(bufio.NewReader(strings.NewReader(req)), 4096, 2); err == nil || !strings.Contains(err.Error(), "too many header lines") {
		t.Errorf("3 headers with a limit of 2: %v", err)
	}
}
