package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshgw/meshgw/gateway/cluster"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/identity"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/gateway/ops"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/access"
)

// Gateway is a running control: its RTSP front door, its local node and, in the cluster role, the
// endpoint remote nodes attach to. Open builds the all-in-one gateway, OpenControl the control
// of a cluster.
type Gateway struct {
	Control *Control
	Node    *node.Local
	RTSP    *rtsp.Server
	log     *slog.Logger
	// ops is the api: listener (opsserver.go), nil without; role and started are what it reports.
	ops     *ops.Server
	role    string
	started time.Time

	// cluster role only
	ident   *identity.Source
	cluster *cluster.Server
	wg      sync.WaitGroup
	stop    chan struct{}
}

// events forwards node reports to the control, which is built after the node it steers.
type events struct{ c *Control }

func (e *events) SourceReady(stream string, sdp []byte, tracks []rtp.Track, replaced bool) {
	e.c.SourceReady(stream, sdp, tracks, replaced)
}
func (e *events) SourceDown(stream string, err error) { e.c.SourceDown(stream, err) }

// clusterEvents hands remote nodes' reports to the control.
type clusterEvents struct{ c *Control }

func (e clusterEvents) NodeUp(n *cluster.Remote, h cluster.Hello) {
	e.c.NodeUp(h.Name, n, NodeInfo{Data: h.DataAddr, RTPPort: h.RTPPort, RTCPPort: h.RTCPPort,
		LiveLive: h.LiveLiveAddr, LiveLiveRTPPort: h.LiveLiveRTPPort, LiveLiveRTCPPort: h.LiveLiveRTCPPort,
		ClientNetworks: h.ClientNetworks, Boot: h.BootID}, h.Flows, h.Sources)
}
func (e clusterEvents) NodeDown(n *cluster.Remote, err error) { e.c.NodeDown(n.Name(), n, err) }
func (e clusterEvents) SourceReady(n *cluster.Remote, stream string, sdp []byte, tracks []rtp.Track, replaced bool) {
	e.c.remoteSourceReady(n.Name(), stream, sdp, tracks, replaced)
}
func (e clusterEvents) SourceDown(n *cluster.Remote, stream string, err error) {
	e.c.SourceDown(stream, fmt.Errorf("node %s: %w", n.Name(), err))
}

// Open builds and starts the all-in-one gateway (control and local node, no remote nodes) from a
// validated config.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	g, err := open(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := g.Control.Start(ctx); err != nil {
		g.closeParts()
		return nil, err
	}
	g.RTSP.Start()
	g.listening()
	if err := g.startOps(cfg, "run"); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// startOps starts the api: listener once the gateway serves.
func (g *Gateway) startOps(cfg *config.Config, role string) error {
	g.role, g.started = role, time.Now()
	s, err := openOps(cfg, g, g.log)
	if err != nil {
		return err
	}
	g.ops = s
	return nil
}

// OpenControl builds and starts the control of a cluster: Open's gateway plus the mTLS gRPC
// endpoint nodes dial. It refuses to start without a SPIFFE identity. Always-on sources start
// after control.startup_grace, once nodes that outlived a previous control have re-attached and
// re-reported their flows, so a restart adopts streams instead of duplicating them; RTSP requests
// that arrive during the grace wait for the rebuilt state (grace.go).
func OpenControl(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, td, err := openIdentity(ctx, cfg, "control", log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Control.Listen)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("control listen %s: %w", cfg.Control.Listen, err)
	}
	g, err := open(cfg, log)
	if err != nil {
		ln.Close()
		src.Close()
		return nil, err
	}
	g.ident = src
	g.stop = make(chan struct{})
	if cfg.Control.StartupGrace > 0 {
		g.Control.holdRequests(cfg.Control.StartupGrace)
	}
	g.cluster, err = cluster.NewServer(cluster.ServerConfig{
		TLS:         identity.ServerTLS(src, identity.AuthorizeAnyNode(td)),
		NodeTimeout: cfg.Control.NodeTimeout,
		Handler:     clusterEvents{g.Control},
		Logger:      log,
	})
	if err != nil {
		ln.Close()
		g.closeParts()
		return nil, err
	}
	g.wg.Add(2)
	go func() {
		defer g.wg.Done()
		if err := g.cluster.Serve(ln); err != nil && !errors.Is(err, cluster.ErrServerClosed) {
			log.Error("node endpoint stopped", "err", err)
		}
	}()
	go func() {
		defer g.wg.Done()
		t := time.NewTimer(cfg.Control.StartupGrace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-g.stop:
			return
		}
		if err := g.Control.FinishAdoption(context.Background()); err != nil {
			log.Error("starting sources", "err", err)
		}
	}()
	g.RTSP.Start()
	log.Info("control listening for nodes", "addr", ln.Addr().String(), "trust_domain", td.String(), "startup_grace", cfg.Control.StartupGrace)
	g.listening()
	if err := g.startOps(cfg, "control"); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// openIdentity opens the process's SPIFFE identity, or explains why it cannot start without one.
func openIdentity(ctx context.Context, cfg *config.Config, role string, log *slog.Logger) (*identity.Source, spiffeid.TrustDomain, error) {
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	icfg := identity.Config{TrustDomain: cfg.Identity.TrustDomain,
		CertFile: cfg.Identity.Cert, KeyFile: cfg.Identity.Key, BundleFile: cfg.Identity.Bundle}
	// Name the wanted ID when the trust domain is known: a Workload API may issue several SVIDs
	// to one workload (control and node under one uid), and static files are checked against it.
	if td, err := spiffeid.TrustDomainFromString(cfg.Identity.TrustDomain); err == nil {
		if role == "control" {
			icfg.ID = identity.ControlID(td).String()
		} else if id, err := identity.NodeID(td, cfg.Node.Name); err == nil {
			icfg.ID = id.String()
		}
	}
	src, err := identity.Open(ictx, icfg, log)
	if err != nil {
		if errors.Is(err, identity.ErrNoIdentity) {
			return nil, spiffeid.TrustDomain{}, fmt.Errorf("meshgw %s refuses to start without an identity (the control↔node channel is never plaintext): %w", role, err)
		}
		return nil, spiffeid.TrustDomain{}, fmt.Errorf("%s identity: %w", role, err)
	}
	return src, src.TrustDomain(), nil
}

func open(cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	listen := cfg.RTSP.Listen
	if listen == "" {
		listen = cfg.RTSPS.Listen // plain RTSP off: the data plane binds where RTSPS listens
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("rtsp listen %q: %w", listen, err)
	}
	tlsCfg, err := rtspsConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	ev := &events{}
	n, err := node.NewLocal(node.LocalConfig{
		Name:      cfg.Node.Name,
		UDP:       udpConfig(cfg, host, log),
		Advertise: cfg.Node.DataAddress,
		LiveLive:  liveLiveUDPConfig(cfg, log),
		Events:    ev,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	ctl := New(cfg, n, log)
	ctl.SetLocalPorts(n.UDP().LocalAddr(), n.UDP().RTPPort(), n.UDP().RTCPPort())
	if p := n.LiveLiveUDP(); p != nil {
		ctl.SetLocalLiveLive(cfg.Node.LiveLiveAddress, p.RTPPort(), p.RTCPPort())
	}
	ev.c = ctl
	srv, err := rtsp.NewServer(rtsp.ServerConfig{
		Listen:            cfg.RTSP.Listen,
		TLSListen:         cfg.RTSPS.Listen,
		TLSConfig:         tlsCfg,
		ReadTimeout:       cfg.RTSP.ReadTimeout,
		WriteTimeout:      cfg.RTSP.WriteTimeout,
		SessionTimeout:    cfg.RTSP.SessionTimeout,
		MaxRequestBytes:   cfg.RTSP.MaxRequestBytes,
		TCPQueue:          cfg.RTSP.TCPQueue,
		SlowReaderTimeout: cfg.RTSP.SlowReaderTimeout,
		AllowUDP:          cfg.RTSP.Allows(config.ProtoUDP),
		AllowMulticast:    cfg.RTSP.Allows(config.ProtoMulticast),
		AllowTCP:          cfg.RTSP.Allows(config.ProtoTCP),
		Handler:           ctl,
		Logger:            log,
		Auth:              authPolicy(cfg),
		Bans:              access.NewBans(access.BanConfig{MaxFailures: cfg.Auth.MaxFailures, Window: cfg.Auth.FailureWindow, BanTime: cfg.Auth.BanTime}, nil),
		BanTime:           cfg.Auth.BanTime,
		NonceLifetime:     cfg.Auth.NonceLifetime,
		Hashing:           access.VerifierConfig{Slots: cfg.Auth.MaxConcurrentHashes, Wait: cfg.Auth.HashWait},
		Limits: rtsp.Limits{
			MaxSessions: cfg.RTSP.Limits.MaxSessions, MaxSessionsPerRoute: cfg.RTSP.Limits.MaxSessionsPerRoute,
			MaxSessionsPerAddress: cfg.RTSP.Limits.MaxSessionsPerAddress, MaxUnauthConns: cfg.RTSP.Limits.MaxUnauthenticated,
			MaxUnauthConnsPerAddress: cfg.RTSP.Limits.MaxUnauthenticatedPerAddress, MaxHeaders: cfg.RTSP.Limits.MaxRequestHeaders,
		},
	})
	if err != nil {
		n.Close()
		return nil, err
	}
	return &Gateway{Control: ctl, Node: n, RTSP: srv, log: log}, nil
}

// authPolicy is the front door's rule set: nil (everyone may do everything) for a config without
// an auth: section and without route allow_ips, as before those existed.
func authPolicy(cfg *config.Config) *access.Policy {
	var routeIPs func(string) []netip.Prefix
	for _, r := range cfg.Routes {
		if len(r.AllowIPs) > 0 {
			routeIPs = func(path string) []netip.Prefix {
				if m, ok := cfg.Match(path); ok {
					return m.AllowIPs
				}
				return nil
			}
			break
		}
	}
	if !cfg.Auth.Enabled && routeIPs == nil {
		return nil
	}
	return cfg.Auth.Policy(routeIPs)
}

func udpConfig(cfg *config.Config, host string, log *slog.Logger) rtp.UDPConfig {
	return rtp.UDPConfig{
		RTPAddr:            net.JoinHostPort(host, strconv.Itoa(cfg.RTSP.RTPPort)),
		QueueLen:           cfg.RTSP.UDPQueue,
		EgressWorkers:      cfg.RTSP.EgressWorkers,
		MulticastTTL:       cfg.RTSP.Multicast.TTL,
		MulticastInterface: cfg.RTSP.Multicast.Interface,
		Logger:             log,
	}
}

// liveLiveUDPConfig is the second socket pair of a node with node.live_live_address, nil
// without: the same port numbers as the first pair, on the second network.
func liveLiveUDPConfig(cfg *config.Config, log *slog.Logger) *rtp.UDPConfig {
	if !cfg.Node.LiveLiveAddress.IsValid() {
		return nil
	}
	u := udpConfig(cfg, cfg.Node.LiveLiveAddress.String(), log)
	return &u
}

// rtspsConfig is the TLS config of the RTSPS listener, nil when rtsps: is absent.
func rtspsConfig(cfg *config.Config, log *slog.Logger) (*tls.Config, error) {
	if !cfg.RTSPS.Enabled() {
		return nil, nil
	}
	r, err := rtsp.NewCertReloader(cfg.RTSPS.Cert, cfg.RTSPS.Key, log)
	if err != nil {
		return nil, err
	}
	return r.TLSConfig(), nil
}

func (g *Gateway) listening() {
	rtsps := ""
	if a := g.RTSP.TLSAddr(); a != nil {
		rtsps = a.String()
	}
	g.log.Info("meshgw listening", "rtsp", g.RTSP.Addr().String(), "rtsps", rtsps, "rtp_port", g.Node.UDP().RTPPort(),
		"rtcp_port", g.Node.UDP().RTCPPort(), "routes", len(g.Control.cfg.Routes), "node", g.Control.place.local.name)
}

func (g *Gateway) closeParts() {
	g.RTSP.Close()
	g.Control.Close()
	g.Node.Close()
	if g.ident != nil {
		g.ident.Close()
	}
}

// Close stops the front door, then the control's flows, then the node. A cluster control leaves
// every flow on remote nodes running for the next control to adopt.
func (g *Gateway) Close() error {
	if g.ops != nil {
		g.ops.Close()
	}
	if g.cluster != nil {
		close(g.stop)
		g.Control.Detach()
	}
	err := g.RTSP.Close()
	if g.cluster != nil {
		g.cluster.Close()
	}
	g.wg.Wait()
	g.Control.Close()
	if nerr := g.Node.Close(); err == nil {
		err = nerr
	}
	if g.ident != nil {
		g.ident.Close()
	}
	return err
}
