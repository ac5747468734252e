package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
)

// Gateway is the all-in-one meshgw: the control, its RTSP front door and its local node.
type Gateway struct {
	Control *Control
	Node    *node.Local
	RTSP    *rtsp.Server
	log     *slog.Logger
}

// events forwards node reports to the control, which is built after the node it steers.
type events struct{ c *Control }

func (e *events) SourceReady(stream string, sdp []byte, tracks []rtp.Track, replaced bool) {
	e.c.SourceReady(stream, sdp, tracks, replaced)
}
func (e *events) SourceDown(stream string, err error) { e.c.SourceDown(stream, err) }

// Open builds and starts a gateway from a validated config.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(cfg.RTSP.Listen)
	if err != nil {
		return nil, fmt.Errorf("rtsp listen %q: %w", cfg.RTSP.Listen, err)
	}
	ev := &events{}
	n, err := node.NewLocal(node.LocalConfig{
		Name: "local",
		UDP: rtp.UDPConfig{
			RTPAddr:            net.JoinHostPort(host, strconv.Itoa(cfg.RTSP.RTPPort)),
			QueueLen:           cfg.RTSP.UDPQueue,
			EgressWorkers:      cfg.RTSP.EgressWorkers,
			MulticastTTL:       cfg.RTSP.Multicast.TTL,
			MulticastInterface: cfg.RTSP.Multicast.Interface,
			Logger:             log,
		},
		Events: ev,
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	ctl := New(cfg, n, log)
	ctl.SetLocalPorts(n.UDP().LocalAddr(), n.UDP().RTPPort(), n.UDP().RTCPPort())
	ev.c = ctl
	srv, err := rtsp.NewServer(rtsp.ServerConfig{
		Listen:            cfg.RTSP.Listen,
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
	})
	if err != nil {
		n.Close()
		return nil, err
	}
	if err := ctl.Start(ctx); err != nil {
		srv.Close()
		ctl.Close()
		n.Close()
		return nil, err
	}
	srv.Start()
	log.Info("meshgw listening", "rtsp", srv.Addr().String(), "rtp_port", n.UDP().RTPPort(), "rtcp_port", n.UDP().RTCPPort(), "routes", len(cfg.Routes))
	return &Gateway{Control: ctl, Node: n, RTSP: srv, log: log}, nil
}

// Close stops the front door, then the control's flows, then the node.
func (g *Gateway) Close() error {
	err := g.RTSP.Close()
	g.Control.Close()
	if nerr := g.Node.Close(); err == nil {
		err = nerr
	}
	return err
}
