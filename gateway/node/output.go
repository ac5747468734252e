package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/meshgw/meshgw/fec"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/rtpout"
)

// OutputSpec is what an RTPSink needs besides its destination (RTPSink.RTP, RTPSink.RTCP).
type OutputSpec struct {
	// Leg2 is the second 2022-7 leg's RTP destination (its RTCP goes to port+1); invalid for
	// none. Both legs carry identical packets: same bytes, same SSRC, sequence numbers and
	// timestamps, and the same FEC.
	Leg2 netip.AddrPort
	// FECColumns and FECRows are L and D of SMPTE 2022-1 FEC; FECColumns 0 sends no FEC.
	// Column FEC goes to the destination port+2, row FEC to port+4 (on both legs).
	FECColumns, FECRows int
	// FECMode picks the FEC streams (fec.Mode2D, fec.ModeColumn, fec.ModeRow).
	FECMode fec.Mode
	// TTL is the multicast TTL (hop limit) of the output's packets; 0 means 1.
	TTL int
}

// fecConfig is the encoder configuration of the spec; ok is false without FEC.
func (o OutputSpec) fecConfig() (fec.Config, bool) {
	if o.FECColumns == 0 {
		return fec.Config{}, false
	}
	return fec.Config{Columns: o.FECColumns, Rows: o.FECRows, Mode: o.FECMode}, true
}

func (o OutputSpec) validate(f RTPSink) error {
	if f.Track < 0 {
		return errors.New("negative track")
	}
	if !f.RTP.IsValid() || !f.RTCP.IsValid() {
		return errors.New("sink.rtp needs RTP and RTCP destinations")
	}
	dsts := []netip.AddrPort{f.RTP}
	if o.Leg2.IsValid() {
		dsts = append(dsts, o.Leg2)
	}
	for _, d := range dsts {
		if d.Port() == 0 || d.Addr().IsUnspecified() {
			return fmt.Errorf("output destination %s cannot be sent to", d)
		}
		if o.FECColumns != 0 && d.Port() > 65535-5 {
			return fmt.Errorf("output destination %s: no room for the FEC ports +2 and +4", d)
		}
	}
	if o.TTL < 0 || o.TTL > 255 {
		return fmt.Errorf("output TTL %d out of range 0..255", o.TTL)
	}
	if cfg, ok := o.fecConfig(); ok {
		if _, err := fec.NewEncoder(cfg); err != nil {
			return fmt.Errorf("output FEC: %w", err)
		}
	} else if o.FECRows != 0 || o.FECMode != 0 {
		return errors.New("output FEC rows or mode without columns")
	}
	return nil
}

// newRTPOutput opens the sockets of an RTPSink f (validated): the per-packet output that
// rtp/rtpout carries, configured from f's destinations and OutputSpec.
func newRTPOutput(f RTPSink, pool *rtp.Pool, log *slog.Logger) (*rtpout.Output, error) {
	cfg := rtpout.Config{RTP: f.RTP, RTCP: f.RTCP, Leg2: f.Output.Leg2, TTL: f.Output.TTL, Pool: pool, Logger: log}
	cfg.FEC, _ = f.Output.fecConfig()
	return rtpout.New(cfg)
}

// outputStats are a SinkRTP flow's counters: its output's, summed over the legs.
func outputStats(o *rtpout.Output) FlowStats {
	st := o.Stats()
	return FlowStats{Packets: st.Packets, Bytes: st.Bytes, FEC: st.FEC, Dropped: st.Dropped, Errors: st.Errors}
}

// setRepairLocked gives a NACK relay source its per-track repair (once: NACK and NACKWait are
// fixed at creation) and a feedback sink aimed at its current upstream's RTCP address.
func (n *Local) setRepairLocked(fl *flow, f RelaySource) {
	if !f.NACK {
		return
	}
	if fl.rx == nil {
		for range f.Tracks {
			fl.rx = append(fl.rx, newRepairer(fl, n.pool, f.NACKWait))
		}
	}
	if old := fl.fb.Swap(0, n.udp.NewSink(f.RTP, f.RTCP)); old != nil {
		old.Close()
	}
}

// stopRepairLocked ends a relay source's repair: held packets are released, no more NACKs.
func (n *Local) stopRepairLocked(fl *flow) {
	for _, rx := range fl.rx {
		rx.Close()
	}
	if fb := fl.fb.Swap(0, nil); fb != nil {
		fb.Close()
	}
}
