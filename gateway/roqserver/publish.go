package roqserver

import (
	"bufio"
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/roq"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// publisher is a RoQ publisher's session: its packets go to the route's hubs, as an
// interleaved publisher's do.
type publisher struct {
	hubs   []*rtp.Hub
	byFlow map[uint64]roq.FlowRef
	mu     []sync.Mutex // per track: a track's packets may arrive on several streams at once
}

// HandlePacket implements roq.PacketHandler.
func (p *publisher) HandlePacket(flow uint64, pkt []byte) {
	ref, ok := p.byFlow[flow]
	if !ok {
		return
	}
	m := &p.mu[ref.Track]
	m.Lock()
	if ref.RTCP {
		_ = p.hubs[ref.Track].WriteRTCP(pkt) // a bad packet costs only itself
	} else {
		_ = p.hubs[ref.Track].WriteRTP(pkt)
	}
	m.Unlock()
}

// publish runs a PUSH request: it opens the route for the publisher through the handler, as
// the RTSP front door does for ANNOUNCE and RECORD, and feeds the hubs until the session ends.
func (s *Server) publish(rctx context.Context, cancel context.CancelFunc, c *quic.Conn, ctl *quic.Stream, req roq.Request, remote netip.AddrPort, route string, log *slog.Logger) {
	_, tracks, err := sdp.Parse(req.SDP)
	if err != nil {
		refuse(c, ctl, 400, err.Error())
		return
	}
	ps, err := s.cfg.Handler.OpenPublish(rctx, rtsp.ConnInfo{Remote: remote, Local: addrPort(c.LocalAddr()), Secure: true}, route, req.SDP, tracks)
	if err != nil {
		log.Info("quic: open route to publish", "route", route, "err", err)
		refuse(c, ctl, int(rtsp.StatusOf(err)), err.Error())
		return
	}
	defer ps.Close()
	p := &publisher{byFlow: map[uint64]roq.FlowRef{}, mu: make([]sync.Mutex, len(tracks))}
	ans := roq.Answer{Code: 200, Reason: "OK", Mode: req.Mode, SDP: req.SDP}
	for i := range tracks {
		h, err := ps.Hub(i)
		if err != nil {
			refuse(c, ctl, int(rtsp.StatusOf(err)), err.Error())
			return
		}
		p.hubs = append(p.hubs, h)
		f := roq.TrackFlows(i)
		ans.Flows = append(ans.Flows, f)
		p.byFlow[f.RTP] = roq.FlowRef{Track: i}
		p.byFlow[f.RTCP] = roq.FlowRef{Track: i, RTCP: true}
	}
	if err := ps.Record(rctx); err != nil {
		refuse(c, ctl, int(rtsp.StatusOf(err)), err.Error())
		return
	}
	if _, err := ctl.Write(roq.AppendAnswer(nil, ans)); err != nil {
		_ = c.CloseWithError(roq.CodeGeneralError, "answer failed")
		return
	}
	cancel()
	log.Info("roq publisher recording", "route", route, "tracks", len(tracks), "alpn", c.ConnectionState().TLS.NegotiatedProtocol)
	ctx, stop := context.WithCancel(s.ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = roq.Receive(ctx, c, p)
		stop()
	})
	wg.Go(func() {
		_, _ = bufio.NewReader(ctl).ReadByte() // the client closing its control stream ends it
		stop()
	})
	why := "client left"
	select {
	case <-ctx.Done():
		if s.ctx.Err() != nil {
			why = "server closing"
		}
	case <-ps.Done():
		why = "replaced by another publisher"
	}
	_ = ctl.Close()
	_ = c.CloseWithError(roq.CodeNoError, why)
	stop()
	ctl.CancelRead(roq.CodeNoError)
	wg.Wait()
	st := c.ConnectionStats()
	log.Info("roq publisher ended", "route", route, "why", why, "srtt", st.SmoothedRTT.Round(time.Microsecond), "quic_lost", st.PacketsLost)
}
