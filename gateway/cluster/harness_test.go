package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/identity"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"

	"github.com/meshgw/meshgw/internal/peertest"
)

const td = "mesh.test"

// wait bounds a wait that only a bug makes long; no assertion is about it.
const wait = 15 * time.Second

// pki is a minted test trust domain with SVIDs for the control and some nodes.
type pki struct{ dir string }

func newPKI(t *testing.T, nodes ...string) pki {
	t.Helper()
	dir := t.TempDir()
	if _, err := identity.Mint(dir, td, nodes...); err != nil {
		t.Fatal(err)
	}
	return pki{dir}
}

// source opens the static identity base (control or a node name).
func (p pki) source(t *testing.T, base string) *identity.Source {
	t.Helper()
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "") // the files, not a Workload API of the host
	src, err := identity.Open(context.Background(), identity.Config{
		TrustDomain: td,
		CertFile:    filepath.Join(p.dir, base+".pem"),
		KeyFile:     filepath.Join(p.dir, base+".key"),
		BundleFile:  filepath.Join(p.dir, "ca.pem"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// logBuffer is a log collector with a wait for a line.
type logBuffer struct{ peertest.LogBuffer }

func (b *logBuffer) logger() *slog.Logger { return b.Logger() }

// waitLog waits until the log holds a line with all of parts.
func (b *logBuffer) waitLog(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(b.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return line
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q in:\n%s", parts, b.String())
	return ""
}

// handlerEvent is one Handler call.
type handlerEvent struct {
	kind   string // up, down, ready, sourcedown
	node   *Remote
	hello  Hello
	err    error
	stream string
	sdp    []byte
	tracks []rtp.Track
	at     time.Time
}

// recHandler records Handler calls in order.
type recHandler struct{ ch chan handlerEvent }

func newRecHandler() *recHandler { return &recHandler{ch: make(chan handlerEvent, 1000)} }

func (h *recHandler) NodeUp(n *Remote, hello Hello) {
	h.ch <- handlerEvent{kind: "up", node: n, hello: hello, at: time.Now()}
}
func (h *recHandler) NodeDown(n *Remote, err error) {
	h.ch <- handlerEvent{kind: "down", node: n, err: err, at: time.Now()}
}
func (h *recHandler) SourceReady(n *Remote, stream string, sdp []byte, tracks []rtp.Track, replaced bool) {
	h.ch <- handlerEvent{kind: "ready", node: n, stream: stream, sdp: sdp, tracks: tracks, at: time.Now()}
}
func (h *recHandler) SourceDown(n *Remote, stream string, err error) {
	h.ch <- handlerEvent{kind: "sourcedown", node: n, stream: stream, err: err, at: time.Now()}
}

// next returns the next call of kind, skipping stats-free noise of other kinds only when skip.
func (h *recHandler) next(t *testing.T, kind string) handlerEvent {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case ev := <-h.ch:
			if ev.kind == kind {
				return ev
			}
			if kind == "up" || kind == "down" {
				if ev.kind == "up" || ev.kind == "down" {
					t.Fatalf("want %s, got %s (err %v)", kind, ev.kind, ev.err)
				}
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", kind, wait)
		}
	}
}

// none checks that no node arrives or leaves for d.
func (h *recHandler) none(t *testing.T, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-h.ch:
			if ev.kind == "up" || ev.kind == "down" {
				t.Fatalf("unexpected %s (err %v)", ev.kind, ev.err)
			}
		case <-timer.C:
			return
		}
	}
}

// startServer runs a control server on addr ("" for a free port) until the test ends or stop.
func startServer(t *testing.T, p pki, addr string, cfg ServerConfig) (s *Server, listen string, stop func()) {
	t.Helper()
	src := p.source(t, "control")
	cfg.TLS = identity.ServerTLS(src, identity.AuthorizeAnyNode(src.TrustDomain()))
	return serve(t, addr, cfg)
}

// serve runs a control server with cfg (TLS included) on addr ("" for a free port) until the
// test ends or stop.
func serve(t *testing.T, addr string, cfg ServerConfig) (s *Server, listen string, stop func()) {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	for deadline := time.Now().Add(wait); ; {
		if l, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return s, l.Addr().String(), stop
}

// startAgent runs an agent with the SVID base, claiming name, until the test ends or stop.
func startAgent(t *testing.T, p pki, base, name, control string, target Target, log *slog.Logger, setup ...func(*Agent)) (a *Agent, stop func()) {
	t.Helper()
	return runAgent(t, clientTLS(t, p, base), name, control, target, log, setup...)
}

// runAgent runs an agent with the client TLS config tc, claiming name, until the test ends or
// stop.
func runAgent(t *testing.T, tc *tls.Config, name, control string, target Target, log *slog.Logger, setup ...func(*Agent)) (a *Agent, stop func()) {
	t.Helper()
	a, err := NewAgent(AgentConfig{
		Control: control,
		TLS:     tc,
		Node:    target,
		Hello: Hello{
			Name: name, DataAddr: netip.MustParseAddr("127.0.0.1"), RTPPort: 8000, RTCPPort: 8001,
			ClientNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Capabilities: []string{"udp"},
		},
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range setup {
		fn(a)
	}
	ran := make(chan error, 1)
	go func() { ran <- a.Run(context.Background()) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			a.Close()
			if err := <-ran; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

// fakeTarget is an in-memory data plane: enough for the API, whose job is to carry flows and
// answers; node.Local's behaviour is tested in package node (and once here, TestRealLocal).
type fakeTarget struct {
	name string
	mu   sync.Mutex
	fl   map[string]node.Flow
	// applies counts Apply calls per flow
	applies map[string]int
}

func newFakeTarget(name string, flows ...node.Flow) *fakeTarget {
	ft := &fakeTarget{name: name, fl: map[string]node.Flow{}, applies: map[string]int{}}
	for _, f := range flows {
		ft.fl[f.ID] = f
	}
	return ft
}

func (ft *fakeTarget) Name() string { return ft.name }

func (ft *fakeTarget) Apply(_ context.Context, f node.Flow) (node.FlowStatus, error) {
	if err := f.Validate(); err != nil {
		return node.FlowStatus{}, err
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.applies[f.ID]++
	if old, ok := ft.fl[f.ID]; ok && (old.Kind() != f.Kind() || old.Stream != f.Stream) {
		return node.FlowStatus{}, &Error{Code: CodeConflict, Msg: fmt.Sprintf("flow %s exists as %s of %s", f.ID, old.Kind(), old.Stream)}
	}
	if strings.HasPrefix(string(f.Kind()), "sink.") {
		live := false
		for _, o := range ft.fl {
			live = live || (o.Stream == f.Stream && strings.HasPrefix(string(o.Kind()), "source."))
		}
		if !live {
			return node.FlowStatus{}, fmt.Errorf("stream %s is not live on this node: %w", f.Stream, node.ErrNotFound)
		}
	}
	ft.fl[f.ID] = f
	return node.FlowStatus{Source: netip.MustParseAddr("127.0.0.1"), RTPPort: 8000, RTCPPort: 8001, SSRC: 42}, nil
}

func (ft *fakeTarget) Delete(_ context.Context, id string) error {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	delete(ft.fl, id)
	return nil
}

func (ft *fakeTarget) Stats(id string) (node.FlowStats, error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if _, ok := ft.fl[id]; !ok {
		return node.FlowStats{}, fmt.Errorf("flow %s: %w", id, node.ErrNotFound)
	}
	return node.FlowStats{Packets: 10, Bytes: 1000, LastActivity: time.Unix(1700000000, 0)}, nil
}

func (ft *fakeTarget) Flows() []node.Flow {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	out := make([]node.Flow, 0, len(ft.fl))
	for _, f := range ft.fl {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func flowIDs(fs []node.Flow) []string {
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = f.ID
	}
	sort.Strings(ids)
	return ids
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// clientTLS is a node's client config for the SVID base.
func clientTLS(t *testing.T, p pki, base string) *tls.Config {
	t.Helper()
	src := p.source(t, base)
	return identity.ClientTLS(src, identity.AuthorizeControl(src.TrustDomain()))
}
