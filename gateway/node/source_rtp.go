package node

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

// maxSkew bounds a SourceRTP flow's 2022-7 skew: beyond it the merger's
// window would hold seconds of packets.
const maxSkew = 10 * time.Second

// parseRTPSourceURL splits rtp://HOST:PORT (HOST an IP address).
func parseRTPSourceURL(s string) (netip.AddrPort, error) {
	rest, ok := strings.CutPrefix(strings.ToLower(s), "rtp://")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("URL %q is not rtp://HOST:PORT", s)
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("URL %q: %w", s, err)
	}
	if ap.Port() < 2 || ap.Port() > 65530 || ap.Port()%2 != 0 {
		return netip.AddrPort{}, fmt.Errorf("URL %q: port %d, want an even port 2-65530", s, ap.Port())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// rtpSourceConfig turns a SourceRTP flow into the receiver's configuration:
// the tracks from its SDP (one MPEG-TS track without one), track 0 on the
// URL's port and the others on their m= ports, leg 2 shifted by the same
// amount. It is also the flow's validation.
func rtpSourceConfig(f RTPSource) (rtp.RTPSourceConfig, error) {
	var cfg rtp.RTPSourceConfig
	ap, err := parseRTPSourceURL(f.URL)
	if err != nil {
		return cfg, err
	}
	ports := []int{int(ap.Port())}
	if f.SDP == "" {
		cfg.SDP, cfg.Tracks = sdp.MPEGTSSource()
	} else {
		tracks, mports, err := sdp.ParseSource([]byte(f.SDP))
		if err != nil {
			return cfg, fmt.Errorf("SDP: %w", err)
		}
		for i := 1; i < len(tracks); i++ {
			if mports[i] == 0 {
				return cfg, fmt.Errorf("SDP: media %d has port 0", i+1)
			}
			ports = append(ports, mports[i])
		}
		cfg.SDP, cfg.Tracks = []byte(f.SDP), tracks
	}
	cfg.Legs = []rtp.RTPLeg{{Addr: ap.Addr(), Ports: ports}}
	if f.Leg2 != "" {
		ap2, err := parseRTPSourceURL(f.Leg2)
		if err != nil {
			return cfg, fmt.Errorf("leg 2: %w", err)
		}
		p2 := make([]int, len(ports))
		for i, p := range ports {
			if p2[i] = int(ap2.Port()) + p - ports[0]; p2[i] < 2 || p2[i] > 65530 {
				return cfg, fmt.Errorf("leg 2: track %d port %d out of range", i+1, p2[i])
			}
		}
		cfg.Legs = append(cfg.Legs, rtp.RTPLeg{Addr: ap2.Addr(), Ports: p2})
	}
	for _, p := range ports {
		if p > 65530 {
			return cfg, fmt.Errorf("track port %d out of range", p)
		}
	}
	if f.FECColumns < 0 || f.FECColumns > 20 || f.FECRows < 0 || f.FECRows > 20 || (f.FECRows > 0 && f.FECColumns == 0) {
		return cfg, fmt.Errorf("FEC L×D %d×%d out of range", f.FECColumns, f.FECRows)
	}
	if f.Skew < 0 || f.Skew > maxSkew {
		return cfg, fmt.Errorf("skew %v out of range 0..%v", f.Skew, maxSkew)
	}
	cfg.FEC, cfg.Columns, cfg.Rows = f.FECColumns > 0, f.FECColumns, f.FECRows
	cfg.Skew = f.Skew
	cfg.Interface = f.Interface
	return cfg, nil
}

// rtpSource runs a SourceRTP flow: the rtp:// receiver, feeding the stream's input.
type rtpSource struct {
	src *rtp.RTPSource
}

// start binds the flow's sockets; its packets go to the stream's hubs through its streamInput,
// like a pulled source's.
func (r *rtpSource) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		sp := fl.spec.Spec.(RTPSource)
		cfg, err := rtpSourceConfig(sp)
		if err != nil {
			return nil, err
		}
		cfg.Pool = n.pool
		cfg.Logger = n.log.With("stream", fl.spec.Stream, "source", sp.URL)
		src, err := rtp.NewRTPSource(cfg, n.newStreamInput(fl, sp.Pacing, false))
		if err != nil {
			return nil, err
		}
		r.src = src
		return nil, nil
	})
}

func (r *rtpSource) update(_ *Local, fl *flow, f Flow) error {
	keepSpec(fl, f)
	return nil
}

func (r *rtpSource) stats(_ *Local, _ *flow) FlowStats { return rtpSourceStats(r.src) }

func (r *rtpSource) stop(n *Local, fl *flow) func() {
	return closeHubs(n.stopSourceLocked(fl), func() { r.src.Close() })
}

// rtpSourceStats are a SourceRTP flow's stats: Packets/Bytes are what its
// sockets received, Dropped the sequence numbers readers miss, Errors the
// datagrams that were not RTP.
func rtpSourceStats(src *rtp.RTPSource) FlowStats {
	var st FlowStats
	s := src.Stats()
	st.Packets, st.Bytes, st.Dropped, st.Errors = s.Received, s.Bytes, s.Lost, s.Invalid
	st.LastActivity = s.LastPacket
	st.RTPSource = &s
	return st
}
