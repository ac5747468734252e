package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/meshgw/meshgw/gateway/api"
	"github.com/meshgw/meshgw/gateway/identity"
)

const (
	defaultNodeTimeout    = 2 * time.Second
	defaultCommandTimeout = 5 * time.Second
	// minHelloTimeout bounds the wait for a node's Hello; registering is not part of the
	// liveness contract, so a node on a busy host gets more than NodeTimeout for it.
	minHelloTimeout = 5 * time.Second
	// outQueue is the depth of a node's outgoing queue. Commands wait for room; pings are
	// dropped when it is full (the node is behind anyway, and liveness is judged on what it sends).
	outQueue = 256
)

// ServerConfig configures the control's end of the API.
type ServerConfig struct {
	// TLS is identity.ServerTLS(src, identity.AuthorizeAnyNode(td)). Nil is refused: the API is
	// never served in plaintext.
	TLS *tls.Config
	// NodeTimeout: a node from which nothing arrived for this long is dead (default 2s). The
	// server pings every NodeTimeout/4 so that a healthy node always has something to answer.
	NodeTimeout time.Duration
	// CommandTimeout is how long Apply and Delete wait for the node's ack (default 5s).
	CommandTimeout time.Duration
	// Handler receives node arrivals, departures and source events; nil ignores them.
	Handler Handler
	// Logger: nil discards.
	Logger *slog.Logger
}

// Server is the control's end of the API: it accepts node streams, checks each node's identity,
// and offers every registered node as a *Remote.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	grpc   *grpc.Server
	bootID string

	mu     sync.Mutex
	nodes  map[string]*Remote
	closed bool
	// wg owns each stream's receive and send goroutines, which outlive the stream handler by
	// the moment gRPC needs to cancel the stream.
	wg sync.WaitGroup
}

// NewServer checks cfg and builds the server; Serve starts it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.TLS == nil {
		return nil, errors.New("cluster: server: no TLS config (the control↔node API is never served in plaintext)")
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = defaultNodeTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = defaultCommandTimeout
	}
	if cfg.Handler == nil {
		cfg.Handler = nopHandler{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("component", "cluster"), bootID: newBootID(),
		nodes: map[string]*Remote{},
	}
	creds := &handshakeLogger{TransportCredentials: credentials.NewTLS(cfg.TLS), log: s.log}
	s.grpc = grpc.NewServer(
		grpc.Creds(creds),
		// The application pings judge liveness; these only keep idle NATs open and let nodes
		// ping the transport as often as their own keepalive asks.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Close must not return while a stream handler still runs Handler callbacks.
		grpc.WaitForHandlers(true),
	)
	api.RegisterControlServer(s.grpc, controlService{s: s})
	return s, nil
}

// Serve accepts node connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		l.Close()
		return ErrServerClosed
	}
	s.log.Info("control API listening", "addr", l.Addr().String(), "boot_id", s.bootID)
	if err := s.grpc.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("cluster: serve: %w", err)
	}
	return nil
}

// Close ends every node stream (each node gets NodeDown) and waits for all the server's
// goroutines. The nodes keep their flows and attach again to the next server.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.grpc.Stop()
	s.wg.Wait()
	return nil
}

// Nodes returns the registered nodes, by name.
func (s *Server) Nodes() []*Remote {
	s.mu.Lock()
	out := make([]*Remote, 0, len(s.nodes))
	for _, r := range s.nodes {
		out = append(out, r)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// register makes r the node of its name and returns the Remote it replaces, if any.
func (s *Server) register(r *Remote) (old *Remote, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	old = s.nodes[r.name]
	s.nodes[r.name] = r
	return old, nil
}

// unregister forgets r unless a newer Remote already took its name.
func (s *Server) unregister(r *Remote) {
	s.mu.Lock()
	if s.nodes[r.name] == r {
		delete(s.nodes, r.name)
	}
	s.mu.Unlock()
}

// controlService implements the generated service on the server.
type controlService struct {
	api.UnimplementedControlServer
	s *Server
}

// Attach runs one node's session.
func (c controlService) Attach(stream api.Control_AttachServer) error {
	s := c.s
	ctx := stream.Context()
	presented := peerID(stream)
	name, err := identity.PeerNode(ctx)
	if err != nil {
		// the authorizer admits only node IDs, so this is a misconfigured server
		s.log.Warn("node refused: no node identity", "presented_id", presented, "err", err)
		return status.Errorf(codes.PermissionDenied, "no node identity: %v", err)
	}
	r := newRemote(s, name, stream)
	err = r.run(presented)
	return err
}

// peerID is the SPIFFE ID the peer presented, for log lines.
func peerID(stream grpc.ServerStream) string {
	p, ok := peer.FromContext(stream.Context())
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return ""
	}
	id, err := x509svid.IDFromCert(info.State.PeerCertificates[0])
	if err != nil {
		return ""
	}
	return id.String()
}

// handshakeLogger logs refused TLS handshakes, which gRPC otherwise drops without a word: an
// operator must see which identity knocked and why it was turned away.
type handshakeLogger struct {
	credentials.TransportCredentials
	log *slog.Logger
}

// ServerHandshake implements credentials.TransportCredentials.
func (h *handshakeLogger) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	remote := conn.RemoteAddr().String()
	c, info, err := h.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		var pe *identity.PeerError
		if errors.As(err, &pe) {
			h.log.Warn("node refused at TLS handshake", "remote", remote, "presented_id", pe.ID, "err", err)
		} else {
			h.log.Info("TLS handshake failed", "remote", remote, "err", err)
		}
	}
	return c, info, err
}

// Clone implements credentials.TransportCredentials.
func (h *handshakeLogger) Clone() credentials.TransportCredentials {
	return &handshakeLogger{TransportCredentials: h.TransportCredentials.Clone(), log: h.log}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
