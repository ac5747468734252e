package rtsp

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// handleHandler returns a distinct handle per OpenRead and remembers them.
type handleHandler struct {
	refusingHandler
	mu      sync.Mutex
	handles []*fakeStream
}

func (h *handleHandler) OpenRead(context.Context, ConnInfo, string) (ReadStream, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := &fakeStream{done: make(chan struct{})}
	h.handles = append(h.handles, f)
	return f, nil
}

// TestEndSessionClosesItsConnection: ending one session by its handle closes that reader's
// connection at once and leaves the other reader of the same path alone; an unknown handle
// ends nothing.
func TestEndSessionClosesItsConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &handleHandler{}
	s, err := NewServer(ServerConfig{Listener: ln, Handler: h, AllowUDP: true, ReadTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Close() })
	addr := s.Addr().String()

	first, second := playUDP(t, addr, "a"), playUDP(t, addr, "a")
	if n := s.SessionCount(); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	if s.EndSession(&fakeStream{}, "test") || s.EndSession(nil, "test") {
		t.Fatal("EndSession of an unknown handle ended something")
	}
	h.mu.Lock()
	kick := h.handles[0]
	h.mu.Unlock()
	if !s.EndSession(kick, "kicked by test") {
		t.Fatal("EndSession of the first reader's handle found no session")
	}
	readUntilClosed(t, first, 10*time.Second)
	_ = second.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := second.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("other reader: %v, want it kept", err)
	}
	if n := s.SessionCount(); n != 1 {
		t.Fatalf("%d sessions after the kick, want 1", n)
	}
	if s.EndSession(kick, "again") {
		t.Fatal("a second EndSession of the same handle found a session")
	}
}
