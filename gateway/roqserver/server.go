package roqserver

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/keyframe"
	"github.com/meshgw/meshgw/rtp/roq"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/access"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// Config configures a Server.
type Config struct {
	// Listen is the UDP address of the QUIC listener.
	Listen string
	// TLS holds the server certificate; its NextProtos are replaced by roq.ALPNs.
	TLS *tls.Config
	// Handler opens routes for readers (the control).
	Handler rtsp.Handler
	// Auth is the front door's rule set (nil: everyone may read). RoQ clients carry no
	// credentials yet: with auth enabled they get what anonymous clients may read.
	Auth *access.Policy
	// QueueLen bounds each connection's egress queue in packets (rtp/roq default when 0).
	QueueLen int
	// RequestTimeout bounds the wait for a connection's request (default 10 s).
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// Server is a running quic: listener.
type Server struct {
	cfg Config
	ln  *quic.Listener
	tr  *quic.Transport
	udp *net.UDPConn
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[*session]struct{}
}

// New listens on cfg.Listen; Start begins accepting.
func New(cfg Config) (*Server, error) {
	if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil) {
		return nil, errors.New("quic: a TLS certificate is required")
	}
	if cfg.Handler == nil {
		return nil, errors.New("quic: no handler")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	tc := cfg.TLS.Clone()
	tc.NextProtos = roq.ALPNs
	// The server owns its socket and transport, so Close ends every connection at once, also
	// those still draining after their close (quic.ListenAddr's transport outlives them).
	uaddr, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("quic listen %s: %w", cfg.Listen, err)
	}
	udp, err := net.ListenUDP("udp", uaddr)
	if err != nil {
		return nil, fmt.Errorf("quic listen %s: %w", cfg.Listen, err)
	}
	tr := &quic.Transport{Conn: udp}
	ln, err := tr.Listen(tc, roq.QUICConfig())
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, fmt.Errorf("quic listen %s: %w", cfg.Listen, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, ln: ln, tr: tr, udp: udp, log: cfg.Logger.With("front", "quic"), ctx: ctx, cancel: cancel,
		sessions: map[*session]struct{}{}}, nil
}

// Addr is the listener's UDP address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Start accepts connections until Close.
func (s *Server) Start() {
	s.wg.Go(func() {
		for {
			c, err := s.ln.Accept(s.ctx)
			if err != nil {
				if s.ctx.Err() == nil {
					s.log.Error("quic accept", "err", err)
				}
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
}

// Close stops accepting, ends every session and waits for them.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.wg.Wait()
	if terr := s.tr.Close(); err == nil {
		err = terr
	}
	_ = s.udp.Close()
	return err
}

// ConnStats is one RoQ reader's connection as quic-go's congestion controller and loss
// detection see it, and what meshgw dropped for it.
type ConnStats struct {
	Remote           netip.AddrPort
	Route            string
	Mode             roq.Mode
	SmoothedRTT      time.Duration
	MinRTT           time.Duration
	CongestionWindow uint64 // bytes
	PacketsSent      uint64 // QUIC packets
	PacketsLost      uint64 // QUIC packets declared lost
	Tracks           []roq.TrackStats
	// Reception is what the client's RTCP receiver reports said, per track.
	Reception []rtp.ReceptionStats
}

// Stats lists the open sessions.
func (s *Server) Stats() []ConnStats {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	out := make([]ConnStats, 0, len(list))
	for _, ss := range list {
		out = append(out, ss.stats())
	}
	return out
}

// session is one served connection.
type session struct {
	s      *Server
	conn   *quic.Conn
	remote netip.AddrPort
	route  string
	mode   roq.Mode
	hubs   []*rtp.Hub
	tracks []rtp.Track
	sinks  []*roq.TrackSink
	byFlow map[uint64]int // RTCP flow -> track

	mu        sync.Mutex
	reception []rtp.ReceptionStats
}

func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	return netip.AddrPort{}
}

// refuse answers a request with an error code and ends the connection.
func refuse(c *quic.Conn, ctl *quic.Stream, code int, reason string) {
	_, _ = ctl.Write(roq.AppendAnswer(nil, roq.Answer{Code: code, Reason: reason}))
	_ = ctl.Close()
	// Let the answer arrive before the connection closes under it: the client closes once it
	// has read it, or the wait gives up.
	_ = ctl.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [256]byte
	for {
		if _, err := ctl.Read(b[:]); err != nil {
			break
		}
	}
	_ = c.CloseWithError(roq.CodeNoError, reason)
}

// serve runs one connection from its request to its end.
func (s *Server) serve(c *quic.Conn) {
	remote := addrPort(c.RemoteAddr())
	log := s.log.With("remote", remote.String())
	rctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	defer cancel()
	ctl, err := c.AcceptStream(rctx)
	if err != nil {
		log.Debug("quic: no request", "err", err)
		_ = c.CloseWithError(roq.CodeGeneralError, "no request")
		return
	}
	_ = ctl.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	req, err := roq.ReadRequest(bufio.NewReaderSize(ctl, 256))
	if err != nil {
		log.Info("quic: bad request", "err", err)
		refuse(c, ctl, 400, err.Error())
		return
	}
	_ = ctl.SetReadDeadline(time.Time{})
	route := strings.Trim(req.Path, "/")
	action := access.Read
	if req.Push() {
		action = access.Publish
	}
	if code, why := s.authorize(remote.Addr(), route, action); code != 0 {
		log.Info("quic: refused", "route", route, "reason", why)
		refuse(c, ctl, code, why)
		return
	}
	if req.Push() {
		s.publish(rctx, cancel, c, ctl, req, remote, route, log)
		return
	}
	rs, err := s.cfg.Handler.OpenRead(rctx, rtsp.ConnInfo{Remote: remote, Local: addrPort(c.LocalAddr()), Secure: true}, route)
	if err != nil {
		log.Info("quic: open route", "route", route, "err", err)
		refuse(c, ctl, int(rtsp.StatusOf(err)), err.Error())
		return
	}
	defer rs.Close()
	ss, err := s.setup(rctx, c, rs, req, remote, route)
	if err != nil {
		log.Info("quic: setup", "route", route, "err", err)
		refuse(c, ctl, int(rtsp.StatusOf(err)), err.Error())
		return
	}
	ans := roq.Answer{Code: 200, Reason: "OK", Mode: ss.mode, SDP: rs.SDP()}
	for i := range ss.tracks {
		ans.Flows = append(ans.Flows, roq.TrackFlows(i))
	}
	if _, err := ctl.Write(roq.AppendAnswer(nil, ans)); err != nil {
		log.Info("quic: answer", "err", err)
		_ = c.CloseWithError(roq.CodeGeneralError, "answer failed")
		return
	}
	if _, err := rs.Play(rctx); err != nil {
		log.Info("quic: play", "err", err)
		_ = c.CloseWithError(roq.CodeGeneralError, "play failed")
		return
	}
	cancel()
	s.run(ss, ctl, rs, log)
}

// authorize applies the front door's address rules and anonymous permissions; it returns 0
// when the request may go on.
func (s *Server) authorize(addr netip.Addr, route string, action access.Action) (int, string) {
	p := s.cfg.Auth
	if p == nil {
		return 0, ""
	}
	if ok, why := p.AddressAllowed(addr, route); !ok {
		return 403, why
	}
	if p.Enabled && (!p.Anonymous.Allows(action, route) || p.Callout != nil) {
		return 403, fmt.Sprintf("RoQ clients are anonymous; anonymous clients may not %s this route", action)
	}
	return 0, ""
}

// setup takes each track's hub on the local node, as an interleaved reader does, and makes the
// connection's sinks.
func (s *Server) setup(ctx context.Context, c *quic.Conn, rs rtsp.ReadStream, req roq.Request, remote netip.AddrPort, route string) (*session, error) {
	ss := &session{s: s, conn: c, remote: remote, route: route, mode: req.Mode, tracks: rs.Tracks(), byFlow: map[uint64]int{}}
	if ss.mode == roq.Datagram && !roq.DatagramsOK(c) {
		ss.mode = roq.Stream // the client did not negotiate datagrams
	}
	for i := range ss.tracks {
		h, err := rs.SetupTCP(ctx, i)
		if err != nil {
			return nil, err
		}
		ss.hubs = append(ss.hubs, h)
		ss.byFlow[roq.TrackFlows(i).RTCP] = i
	}
	ss.reception = make([]rtp.ReceptionStats, len(ss.tracks))
	return ss, nil
}

// run serves a set-up session until the client, the stream or the server ends it.
func (s *Server) run(ss *session, ctl *quic.Stream, rs rtsp.ReadStream, log *slog.Logger) {
	eg := roq.NewEgress(roq.NewTransport(ss.conn), roq.EgressConfig{Mode: ss.mode, QueueLen: s.cfg.QueueLen})
	codecs := sdp.TrackCodecs(rs.SDP())
	for i, h := range ss.hubs {
		name := ""
		if i < len(codecs) {
			name = codecs[i]
		}
		sk := eg.Track(roq.TrackFlows(i), keyframe.CodecOf(name))
		ss.sinks = append(ss.sinks, sk)
		h.AddSink(sk)
	}
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	log.Info("roq reader started", "route", ss.route, "mode", ss.mode.String(), "alpn", ss.conn.ConnectionState().TLS.NegotiatedProtocol, "tracks", len(ss.hubs))

	ctx, cancel := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = roq.Receive(ctx, ss.conn, ss)
		cancel()
	})
	wg.Go(func() {
		// the client closing its control stream ends the session
		var b [64]byte
		for {
			if _, err := ctl.Read(b[:]); err != nil {
				cancel()
				return
			}
		}
	})
	why := "client left"
	select {
	case <-ctx.Done():
		if s.ctx.Err() != nil {
			why = "server closing"
		}
	case <-rs.Done():
		why = "stream ended"
	case <-eg.Done():
		why = "send failed"
		if err := eg.Err(); err != nil {
			why += ": " + err.Error()
		}
	}
	for i, h := range ss.hubs {
		h.RemoveSink(ss.sinks[i])
	}
	st := ss.stats()
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	_ = ctl.Close()
	// Close the connection before the egress: its writer may be blocked in a stream write the
	// congestion window holds, and only the connection's end releases it.
	_ = ss.conn.CloseWithError(roq.CodeNoError, why)
	eg.Close()
	cancel()
	ctl.CancelRead(roq.CodeNoError)
	wg.Wait()
	for i, t := range st.Tracks {
		rr := st.Reception[i]
		log.Info("roq reader reception", "route", ss.route, "track", i, "sent", t.Packets, "dropped", t.Dropped,
			"frames_dropped", t.FramesDropped, "reports", rr.Reports, "lost", rr.CumulativeLost,
			"jitter", rr.Jitter.Round(10*time.Microsecond), "rtcp_rtt", rr.RTT.Round(10*time.Microsecond))
	}
	log.Info("roq reader ended", "route", ss.route, "why", why, "srtt", st.SmoothedRTT, "cwnd", st.CongestionWindow,
		"quic_sent", st.PacketsSent, "quic_lost", st.PacketsLost)
}

// HandlePacket implements roq.PacketHandler: the client's RTCP on a track's RTCP flow is read
// for its receiver reports about the track's line; anything else a reader sends is ignored.
func (ss *session) HandlePacket(flow uint64, pkt []byte) {
	i, ok := ss.byFlow[flow]
	if !ok {
		return
	}
	h := ss.hubs[i]
	ssrc := h.SSRC()
	now := rtp.Now()
	blocks := rtp.NewReportBlocks(pkt)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for {
		b, ok := blocks.Next()
		if !ok {
			return
		}
		if b.SSRC == ssrc {
			ss.reception[i].Note(b, ss.tracks[i].ClockRate, now, h.SRSentAt)
		}
	}
}

func (ss *session) stats() ConnStats {
	cs := ss.conn.ConnectionStats()
	st := ConnStats{Remote: ss.remote, Route: ss.route, Mode: ss.mode, SmoothedRTT: cs.SmoothedRTT, MinRTT: cs.MinRTT,
		CongestionWindow: cs.CongestionWindow, PacketsSent: cs.PacketsSent, PacketsLost: cs.PacketsLost}
	for _, sk := range ss.sinks {
		st.Tracks = append(st.Tracks, sk.Stats())
	}
	ss.mu.Lock()
	st.Reception = append([]rtp.ReceptionStats(nil), ss.reception...)
	ss.mu.Unlock()
	return st
}
