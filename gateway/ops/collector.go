package ops

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// collector turns a fresh Snapshot into metrics at every scrape, so a route, relay or node that
// is gone leaves no series behind. Labels come only from bounded sets (route, node, kind, leg,
// transport, reason, state), never from sessions, addresses or SSRCs.
type collector struct {
	src   Source
	descs []*prometheus.Desc

	buildInfo *prometheus.Desc

	routeStreams, routeReaders, routePublishers, routeOutputs   *prometheus.Desc
	routeRxPackets, routeRxBytes, routeTxPackets, routeTxBytes  *prometheus.Desc
	routeDropped, routeRestarts, fecRecovered, fecUnrecoverable *prometheus.Desc
	readerLoss, readerJitter, readerRTT, readerLost             *prometheus.Desc

	relayPackets, relayLostBefore, relayLostAfter, relayNACKs, relayResent *prometheus.Desc
	legFirst, legDuplicates, legLate, legLost                              *prometheus.Desc

	nodeUp, nodeFlows, nodeCmds, nodeReportAge                 *prometheus.Desc
	flowKinds, flowPackets, flowBytes, flowDropped, flowErrors *prometheus.Desc

	authFailures, authBans, authBanned *prometheus.Desc
}

// Histogram buckets of the readers' receiver report figures. Loss is a fraction (0..1); jitter
// and round trip in seconds, from a LAN's sub-millisecond to a bad mobile link's seconds.
var (
	lossBuckets   = []float64{0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5}
	jitterBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25}
	rttBuckets    = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
)

func newCollector(src Source) *collector {
	c := &collector{src: src}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc(name, help, labels, nil)
		c.descs = append(c.descs, desc)
		return desc
	}
	c.buildInfo = d("meshgw_build_info", "Always 1; the labels name the build and what this process is (role run, control or node).",
		"version", "revision", "goversion", "role", "node")

	c.routeStreams = d("meshgw_route_streams", "Streams of the route by state: starting, live, or down (the source lost its upstream and retries). A regex route may have several.", "route", "state")
	c.routeReaders = d("meshgw_route_readers", "RTSP readers playing the route, by transport (udp, srtp, tcp, multicast).", "route", "transport")
	c.routePublishers = d("meshgw_route_publishers", "Publishers recording to the route.", "route")
	c.routeOutputs = d("meshgw_route_outputs", "rtp:// outputs of the route running.", "route")
	c.routeRxPackets = d("meshgw_route_received_packets_total", "RTP packets taken from the route's source (publisher ingress over UDP, pull, demo, rtp://).", "route")
	c.routeRxBytes = d("meshgw_route_received_bytes_total", "Bytes of those packets (RTP header and payload).", "route")
	c.routeTxPackets = d("meshgw_route_sent_packets_total", "RTP packets sent to the route's UDP and SRTP readers and rtp:// outputs.", "route")
	c.routeTxBytes = d("meshgw_route_sent_bytes_total", "Bytes of those packets.", "route")
	c.routeDropped = d("meshgw_route_dropped_packets_total", "Packets of the route dropped, by reason: queue_full (a reader's send queue was full: slow reader), send_error, srtp (ingress SRTP that failed authentication or the replay check).", "route", "reason")
	c.routeRestarts = d("meshgw_route_source_restarts_total", "Times a source of the route lost its upstream (each is retried with backoff).", "route")
	c.fecRecovered = d("meshgw_route_fec_recovered_packets_total", "Media packets rebuilt from SMPTE 2022-1 FEC by the route's rtp:// source.", "route")
	c.fecUnrecoverable = d("meshgw_route_fec_unrecoverable_packets_total", "Sequence numbers the FEC decoders of the route's rtp:// source gave up on.", "route")
	c.readerLoss = d("meshgw_route_reader_loss_ratio", "Fraction lost in the last RTCP receiver report of each current reader (0..1).", "route")
	c.readerJitter = d("meshgw_route_reader_jitter_seconds", "Interarrival jitter in the last receiver report of each current reader.", "route")
	c.readerRTT = d("meshgw_route_reader_rtt_seconds", "Round trip to each current reader, from its receiver reports' LSR/DLSR.", "route")
	c.readerLost = d("meshgw_route_reader_lost_packets", "Sum over current readers of the cumulative packets lost their receiver reports state.", "route")

	hop := []string{"route", "from", "to", "leg"}
	c.relayPackets = d("meshgw_relay_received_packets_total", "RTP packets the far node of a relay hop took in on the leg.", hop...)
	c.relayLostBefore = d("meshgw_relay_lost_before_repair_packets_total", "Packets missing at the far node before NACK repair (after the 2022-7 merge of two legs).", hop...)
	c.relayLostAfter = d("meshgw_relay_lost_packets_total", "Packets still missing after NACK repair: what the far node's readers miss.", hop...)
	c.relayNACKs = d("meshgw_relay_nacks_total", "RTCP NACK packets the far node sent upstream.", hop...)
	c.relayResent = d("meshgw_relay_retransmitted_packets_total", "Packets the near node resent on NACKs.", hop...)
	c.legFirst = d("meshgw_relay_leg_first_packets_total", "2022-7: packets of the leg that were the first copy of their sequence number.", hop...)
	c.legDuplicates = d("meshgw_relay_leg_duplicate_packets_total", "2022-7: copies on the leg that the other leg had already brought.", hop...)
	c.legLate = d("meshgw_relay_leg_late_packets_total", "2022-7: copies on the leg that came later than the skew allows.", hop...)
	c.legLost = d("meshgw_relay_leg_lost_packets_total", "2022-7: sequence numbers the leg never delivered while the other did (path loss the merge hid).", hop...)

	c.nodeUp = d("meshgw_node_up", "1 while the node is attached to the control (remote) or running (local, and a node's own view of its attachment).", "node")
	c.nodeFlows = d("meshgw_node_flows", "Flows the control runs on the node (sources, sinks, relays, ingresses).", "node")
	c.nodeCmds = d("meshgw_node_command_duration_seconds", "Round trip of the control's commands to the node, from the send loop to the node's ack.", "node")
	c.nodeReportAge = d("meshgw_node_last_report_age_seconds", "Time since the node's last stats report (nodes report every second).", "node")
	c.flowKinds = d("meshgw_flows", "Flows this process's node runs, by kind (source.pull, sink.udp, ...).", "kind")
	c.flowPackets = d("meshgw_flow_packets", "Packets counted by this process's node's current flows, by kind (sinks: sent; sources: taken in). Goes down when flows end: use the route counters for rates.", "kind")
	c.flowBytes = d("meshgw_flow_bytes", "Bytes counted by this process's node's current flows, by kind.", "kind")
	c.flowDropped = d("meshgw_flow_dropped_packets", "Packets dropped by this process's node's current flows, by kind (sinks: queue full; relay sources: unexpected datagrams).", "kind")
	c.flowErrors = d("meshgw_flow_errors", "Packets refused or failed by this process's node's current flows, by kind (send errors, SRTP failures, malformed).", "kind")

	c.authFailures = d("meshgw_auth_failures_total", "Failed RTSP logins (wrong password or unknown user).")
	c.authBans = d("meshgw_auth_bans_total", "Client addresses banned after repeated failures (auth.max_failures).")
	c.authBanned = d("meshgw_auth_banned_addresses", "Client addresses banned now.")
	return c
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.src.Snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	b := Build()
	rev := b.Revision
	if b.Modified {
		rev += "-modified"
	}
	gauge(c.buildInfo, 1, b.Version, rev, b.GoVersion, snap.Role, snap.Node)

	c.collectRoutes(ch, snap, gauge, counter)
	for _, r := range snap.Relays {
		l := []string{r.Route, r.From, r.To, r.Leg}
		if r.SendingEnd {
			counter(c.relayResent, r.Retransmissions, l...)
			continue
		}
		counter(c.relayPackets, r.Packets, l...)
		if r.Repair {
			counter(c.relayLostBefore, r.LostBefore, l...)
			counter(c.relayLostAfter, r.LostAfter, l...)
			counter(c.relayNACKs, r.NACKs, l...)
		}
		if r.ResendsKnown {
			counter(c.relayResent, r.Retransmissions, l...)
		}
		if g := r.Legs; g != nil {
			counter(c.legFirst, g.First, l...)
			counter(c.legDuplicates, g.Duplicates, l...)
			counter(c.legLate, g.Late, l...)
			counter(c.legLost, g.Lost, l...)
		}
	}
	for _, n := range snap.Nodes {
		up := 0.0
		if n.Up {
			up = 1
		}
		gauge(c.nodeUp, up, n.Name)
		gauge(c.nodeFlows, float64(n.Flows), n.Name)
		if !n.Local {
			ch <- prometheus.MustNewConstSummary(c.nodeCmds, n.Commands, n.CommandSeconds, nil, n.Name)
			if !n.LastReport.IsZero() {
				gauge(c.nodeReportAge, snap.Now.Sub(n.LastReport).Seconds(), n.Name)
			}
		}
	}
	for _, k := range snap.Flows {
		gauge(c.flowKinds, float64(k.Flows), k.Kind)
		gauge(c.flowPackets, float64(k.Packets), k.Kind)
		gauge(c.flowBytes, float64(k.Bytes), k.Kind)
		gauge(c.flowDropped, float64(k.Dropped), k.Kind)
		gauge(c.flowErrors, float64(k.Errors), k.Kind)
	}
	if snap.Role != "node" {
		counter(c.authFailures, snap.Auth.Failures)
		counter(c.authBans, snap.Auth.Bans)
		gauge(c.authBanned, float64(snap.Auth.Banned))
	}
}

func (c *collector) collectRoutes(ch chan<- prometheus.Metric, snap Snapshot, gauge func(*prometheus.Desc, float64, ...string), counter func(*prometheus.Desc, uint64, ...string)) {
	type agg struct {
		states         map[string]int
		readers        map[string]int
		pubs, outs     int
		loss, jit, rtt []float64
		lost           int64
	}
	byRoute := map[string]*agg{}
	get := func(route string) *agg {
		a := byRoute[route]
		if a == nil {
			a = &agg{states: map[string]int{}, readers: map[string]int{}}
			byRoute[route] = a
		}
		return a
	}
	for _, st := range snap.Streams {
		a := get(st.Route)
		a.states[st.State]++
		for tr, n := range st.Readers {
			a.readers[tr] += n
		}
		a.pubs += st.Publishers
		a.outs += st.Outputs
	}
	routeOf := map[string]string{} // stream path -> route
	for _, st := range snap.Streams {
		routeOf[st.Name] = st.Route
	}
	for _, s := range snap.Sessions {
		if s.Kind != "reader" || s.Reception == nil || s.Reception.Reports == 0 {
			continue
		}
		a := get(routeOf[s.Route])
		a.loss = append(a.loss, s.Reception.FractionLost)
		a.jit = append(a.jit, s.Reception.Jitter)
		if s.Reception.RTT > 0 {
			a.rtt = append(a.rtt, s.Reception.RTT.Seconds())
		}
		a.lost += s.Reception.CumulativeLost
	}
	for _, r := range snap.Routes {
		a := get(r.Name)
		for _, state := range []string{"starting", "live", "down"} {
			gauge(c.routeStreams, float64(a.states[state]), r.Name, state)
		}
		for tr, n := range a.readers {
			gauge(c.routeReaders, float64(n), r.Name, tr)
		}
		gauge(c.routePublishers, float64(a.pubs), r.Name)
		gauge(c.routeOutputs, float64(a.outs), r.Name)
		counter(c.routeRxPackets, r.In.Packets, r.Name)
		counter(c.routeRxBytes, r.In.Bytes, r.Name)
		counter(c.routeTxPackets, r.Out.Packets, r.Name)
		counter(c.routeTxBytes, r.Out.Bytes, r.Name)
		counter(c.routeDropped, r.Out.Dropped, r.Name, "queue_full")
		counter(c.routeDropped, r.Out.Errors, r.Name, "send_error")
		counter(c.routeDropped, r.In.Errors, r.Name, "srtp")
		counter(c.routeRestarts, r.SourceRestarts, r.Name)
		counter(c.fecRecovered, r.FECRecovered, r.Name)
		counter(c.fecUnrecoverable, r.FECUnrecoverable, r.Name)
		ch <- histogram(c.readerLoss, a.loss, lossBuckets, r.Name)
		ch <- histogram(c.readerJitter, a.jit, jitterBuckets, r.Name)
		ch <- histogram(c.readerRTT, a.rtt, rttBuckets, r.Name)
		gauge(c.readerLost, float64(a.lost), r.Name)
	}
}

// histogram makes a histogram of the current values vs: a snapshot of the readers now, not a
// history, so its buckets can go down between scrapes (read it as a gauge histogram).
func histogram(d *prometheus.Desc, vs, buckets []float64, labels ...string) prometheus.Metric {
	counts := make(map[float64]uint64, len(buckets))
	sum := 0.0
	for _, v := range vs {
		sum += v
		for _, b := range buckets {
			if v <= b {
				counts[b]++
			}
		}
	}
	return prometheus.MustNewConstHistogram(d, uint64(len(vs)), sum, counts, labels...)
}

// promLog hands promhttp's errors to slog.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Error("metrics", "err", fmt.Sprint(v...)) }
