package upgrade

import (
	"bufio"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t *testing.T) *net.TCPListener {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// echoOnce accepts one connection on l and answers its first line with name.
func echoOnce(l net.Listener, name string) {
	c, err := l.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		_, _ = c.Write([]byte(name + "\n"))
	}
}

func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("who\n")); err != nil {
		t.Fatal(err)
	}
	s, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

// TestHandOver: the successor serves on the very listening socket of the predecessor, the
// predecessor stops only after the successor said it serves, and the path is free for the
// successor's own offer afterwards.
func TestHandOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "up.sock")
	a, b := listen(t), listen(t)
	defer a.Close()
	defer b.Close()
	stopped := make(chan struct{})
	o, err := NewOffer(OfferConfig{Path: path, Listeners: []Listener{{"rtsp", a}, {"rtsps", b}},
		Stop: func() { close(stopped); a.Close(); b.Close() }})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()

	in, err := Take(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(in.Names(), ","); got != "rtsp,rtsps" {
		t.Fatalf("names %q", got)
	}
	la := in.Listener("rtsp")
	if la == nil || in.Listener("nope") != nil {
		t.Fatalf("listener lookup: %v", la)
	}
	defer la.Close()
	if la.Addr().String() != a.Addr().String() {
		t.Fatalf("inherited %s, offered %s", la.Addr(), a.Addr())
	}
	select {
	case <-stopped:
		t.Fatal("predecessor stopped before the successor was ready")
	default:
	}
	if err := in.Ready(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.HandedOver():
	case <-time.After(5 * time.Second):
		t.Fatal("no handover")
	}
	<-stopped
	// the predecessor's copy is closed; the successor's accepts on the same port
	done := make(chan struct{})
	go func() { defer close(done); echoOnce(la, "successor") }()
	if got := ask(t, a.Addr().String()); got != "successor" {
		t.Fatalf("answered by %q", got)
	}
	<-done
	// the successor can offer on the same path now
	o2, err := NewOffer(OfferConfig{Path: path, Listeners: []Listener{{"rtsp", la.(*net.TCPListener)}}})
	if err != nil {
		t.Fatal(err)
	}
	o2.Close()
}

// TestAbandoned: a successor that goes away before it is ready leaves the predecessor serving,
// and a later successor still gets the listeners.
func TestAbandoned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "up.sock")
	a := listen(t)
	defer a.Close()
	o, err := NewOffer(OfferConfig{Path: path, Listeners: []Listener{{"rtsp", a}},
		Stop: func() { t.Error("stopped for an abandoned successor") }})
	if err != nil {
		t.Fatal(err)
	}
	in, err := Take(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	in, err = Take(path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	select {
	case <-o.HandedOver():
		t.Fatal("handed over to a successor that gave up")
	case <-time.After(100 * time.Millisecond):
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNoPredecessor(t *testing.T) {
	dir := t.TempDir()
	if _, err := Take(filepath.Join(dir, "none.sock"), time.Second); !errors.Is(err, ErrNoPredecessor) {
		t.Fatalf("missing socket: %v", err)
	}
	// a socket file left by a process that died
	path := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := Take(path, time.Second); !errors.Is(err, ErrNoPredecessor) {
		t.Fatalf("stale socket: %v", err)
	}
	a := listen(t)
	defer a.Close()
	o, err := NewOffer(OfferConfig{Path: path, Listeners: []Listener{{"rtsp", a}}})
	if err != nil {
		t.Fatalf("offer over a stale socket file: %v", err)
	}
	o.Close()
}

func TestOfferMessage(t *testing.T) {
	b, err := encodeOffer([]string{"rtsp", "rtsps"})
	if err != nil {
		t.Fatal(err)
	}
	names, err := decodeOffer(b, 2)
	if err != nil || strings.Join(names, ",") != "rtsp,rtsps" {
		t.Fatalf("round trip: %v %v", names, err)
	}
	for _, c := range []struct {
		name string
		b    []byte
		nfds int
	}{
		{"wrong count of descriptors", b, 1},
		{"truncated", b[:len(b)-1], 2},
		{"trailing", append(append([]byte{}, b...), 'x'), 2},
		{"version", append([]byte("MGWU\x02"), b[5:]...), 2},
		{"magic", append([]byte("XGWU"), b[4:]...), 2},
		{"twice", []byte("MGWU\x01\x02\x04rtsp\x04rtsp"), 2},
		{"empty name", []byte("MGWU\x01\x01\x00"), 1},
		{"none", []byte("MGWU\x01\x00"), 0},
	} {
		if _, err := decodeOffer(c.b, c.nfds); !errors.Is(err, errMessage) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := encodeOffer(nil); err == nil {
		t.Error("an empty offer encoded")
	}
	if _, err := encodeOffer([]string{strings.Repeat("x", 256)}); err == nil {
		t.Error("a 256-byte name encoded")
	}
}

// FuzzDecodeOffer: any message, with any count of descriptors, decodes or fails with errMessage,
// and what decodes encodes back to the same bytes.
func FuzzDecodeOffer(f *testing.F) {
	b, _ := encodeOffer([]string{"rtsp", "rtsps"})
	f.Add(b, 2)
	f.Add([]byte("MGWU\x01\x01\x04rtsp"), 1)
	f.Add([]byte("MGWU"), 0)
	f.Fuzz(func(t *testing.T, b []byte, nfds int) {
		names, err := decodeOffer(b, nfds)
		if err != nil {
			if !errors.Is(err, errMessage) {
				t.Fatalf("error not wrapping errMessage: %v", err)
			}
			return
		}
		again, err := encodeOffer(names)
		if err != nil || string(again) != string(b) {
			t.Fatalf("decoded %q but encodes to %q (%v)", names, again, err)
		}
	})
}
