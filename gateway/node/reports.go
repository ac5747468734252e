package node

import (
	"math/rand/v2"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

// DefaultReportInterval is how often a node sends RTCP receiver reports to its UDP publishers
// (RFC 3550 §6.2's 5 s minimum; each interval is drawn from 0.5–1.5 times it).
const DefaultReportInterval = 5 * time.Second

// upstreamReports is what a UDP publisher's ingress keeps to report on what it receives: RTCP
// terminates at each hop (DESIGN §4), so the node tells the publisher its loss, jitter and the
// round trip in receiver reports of its own.
type upstreamReports struct {
	out      *rtp.UDPSink // to the publisher's RTCP address, from the node's RTCP socket
	reporter uint32       // our SSRC in the reports
	iv       rtp.RRInterval
}

// newUpstreamReports opens the report path of a plain UDP publisher's ingress. SRTP publishers
// get none: their RTCP would need SRTCP under a key for the other direction, which MIKEY as
// RTSP uses it does not hand out.
func (n *Local) newUpstreamReports(f UDPIngress) *upstreamReports {
	if len(f.SRTPKey) > 0 {
		return nil
	}
	return &upstreamReports{out: n.udp.NewSink(f.RTP, f.RTCP), reporter: rand.Uint32() | 1}
}

// reportLoop sends the receiver reports of every UDP publisher's ingress until the node closes.
func (n *Local) reportLoop(interval time.Duration) {
	defer n.wg.Done()
	buf := make([]byte, 0, 256)
	cname := "meshgw-" + n.name
	timer := time.NewTimer(jittered(interval))
	defer timer.Stop()
	type job struct {
		hub *rtp.Hub
		up  *upstreamReports
	}
	var due []job
	for {
		select {
		case <-n.done:
			return
		case <-timer.C:
		}
		timer.Reset(jittered(interval))
		due = due[:0]
		n.mu.Lock()
		for _, fl := range n.flows {
			if fl.up != nil && fl.hub != nil {
				due = append(due, job{fl.hub, fl.up})
			}
		}
		n.mu.Unlock()
		now := rtp.Now()
		for _, j := range due {
			// a flow deleted meanwhile has closed its sink, which drops what it is given
			blk, ok := j.hub.ReceptionReport(&j.up.iv, now)
			if !ok {
				continue
			}
			buf = rtp.AppendReceiverReport(buf[:0], j.up.reporter, cname, blk)
			p := n.pool.Get(len(buf))
			copy(p.Bytes(), buf)
			j.up.out.DeliverRTCP(p)
		}
	}
}

// jittered draws one report interval (RFC 3550 §6.3.1: 0.5–1.5 times the mean, so reporters do
// not fall into step).
func jittered(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}
