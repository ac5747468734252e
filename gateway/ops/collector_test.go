package ops

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// clusterSnapshot is a control's view with readers sessions on route cam, a two-leg relay and a
// remote node.
func clusterSnapshot(readers int) Snapshot {
	now := time.Now()
	s := Snapshot{Node: "ctl", Role: "control", Now: now,
		Routes: []Route{
			{Name: "cam", Source: "rtsp://10.0.0.5/live", In: Counters{Packets: 1000, Bytes: 1_200_000, Errors: 3},
				Out: Counters{Packets: 5000, Bytes: 6_000_000, Dropped: 7, Errors: 1}, SourceRestarts: 2, FECRecovered: 4, FECUnrecoverable: 1},
			{Name: "~^live/(.+)$", Regex: true, Source: "publisher"},
		},
		Streams: []Stream{
			{Name: "cam", Route: "cam", State: "live", Readers: map[string]int{"udp": readers, "tcp": 1}},
			{Name: "live/a", Route: "~^live/(.+)$", State: "live", Publishers: 1, Readers: map[string]int{}},
			{Name: "live/b", Route: "~^live/(.+)$", State: "down", Readers: map[string]int{}},
		},
		Relays: []Relay{
			{Route: "cam", From: "ingest", To: "edge", Leg: "a", Packets: 900, Repair: true, LostBefore: 20, LostAfter: 2, NACKs: 5, Retransmissions: 18, ResendsKnown: true,
				Legs: &LegCounters{Received: 900, First: 880, Duplicates: 10, Lost: 20}},
			{Route: "cam", From: "ingest", To: "edge", Leg: "b", Packets: 905, Legs: &LegCounters{Received: 905, First: 20, Duplicates: 885}},
			{Route: "cam", From: "ctl", To: "other", Leg: "a", SendingEnd: true, Retransmissions: 6, ResendsKnown: true},
		},
		Nodes: []Node{
			{Name: "ctl", Local: true, Up: true, Flows: 3},
			{Name: "edge", Up: true, Flows: readers + 2, Commands: 10, CommandSeconds: 0.05, LastReport: now.Add(-500 * time.Millisecond)},
		},
		Flows: []FlowKind{{Kind: "sink.udp", Flows: readers, Counters: Counters{Packets: 42}}},
		Auth:  AuthStats{Failures: 9, Bans: 1, Banned: 1},
	}
	for i := range readers {
		s.Sessions = append(s.Sessions, Session{ID: fmt.Sprintf("rs-%d", i), Kind: "reader", Route: "cam", Transport: "udp", Node: "edge",
			Remote:    netip.MustParseAddrPort(fmt.Sprintf("10.1.0.%d:5000", i%250+1)),
			Reception: &Reception{FractionLost: float64(i%3) / 100, Jitter: 0.001 * float64(i%4), RTT: time.Duration(i%5+1) * time.Millisecond, CumulativeLost: int64(i), Reports: 1}})
	}
	return s
}

func gather(t *testing.T, src Source) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newCollector(src))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := 0.0
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Histogram != nil:
				v = float64(m.Histogram.GetSampleCount())
			case m.Summary != nil:
				v = float64(m.Summary.GetSampleCount())
			}
			fmt.Fprintf(&b, "%s{%s} %g\n", mf.GetName(), strings.Join(labels, ","), v)
		}
	}
	return b.String()
}

func TestCollectorSeries(t *testing.T) {
	src := &fixedSource{snap: clusterSnapshot(4)}
	out := gather(t, src)
	for _, want := range []string{
		"meshgw_route_streams{route=cam,state=live} 1",
		"meshgw_route_streams{route=~^live/(.+)$,state=live} 1",
		"meshgw_route_streams{route=~^live/(.+)$,state=down} 1",
		"meshgw_route_readers{route=cam,transport=udp} 4",
		"meshgw_route_readers{route=cam,transport=tcp} 1",
		"meshgw_route_publishers{route=~^live/(.+)$} 1",
		"meshgw_route_received_packets_total{route=cam} 1000",
		"meshgw_route_received_bytes_total{route=cam} 1.2e+06",
		"meshgw_route_sent_packets_total{route=cam} 5000",
		"meshgw_route_dropped_packets_total{reason=queue_full,route=cam} 7",
		"meshgw_route_dropped_packets_total{reason=send_error,route=cam} 1",
		"meshgw_route_dropped_packets_total{reason=srtp,route=cam} 3",
		"meshgw_route_source_restarts_total{route=cam} 2",
		"meshgw_route_fec_recovered_packets_total{route=cam} 4",
		"meshgw_route_fec_unrecoverable_packets_total{route=cam} 1",
		"meshgw_route_reader_loss_ratio{route=cam} 4",
		"meshgw_route_reader_rtt_seconds{route=cam} 4",
		"meshgw_route_reader_lost_packets{route=cam} 6",
		"meshgw_relay_received_packets_total{from=ingest,leg=a,route=cam,to=edge} 900",
		"meshgw_relay_received_packets_total{from=ingest,leg=b,route=cam,to=edge} 905",
		"meshgw_relay_lost_before_repair_packets_total{from=ingest,leg=a,route=cam,to=edge} 20",
		"meshgw_relay_lost_packets_total{from=ingest,leg=a,route=cam,to=edge} 2",
		"meshgw_relay_nacks_total{from=ingest,leg=a,route=cam,to=edge} 5",
		"meshgw_relay_retransmitted_packets_total{from=ingest,leg=a,route=cam,to=edge} 18",
		"meshgw_relay_leg_lost_packets_total{from=ingest,leg=a,route=cam,to=edge} 20",
		"meshgw_relay_leg_duplicate_packets_total{from=ingest,leg=b,route=cam,to=edge} 885",
		"meshgw_relay_retransmitted_packets_total{from=ctl,leg=a,route=cam,to=other} 6",
		"meshgw_node_up{node=edge} 1",
		"meshgw_node_flows{node=edge} 6",
		"meshgw_node_command_duration_seconds{node=edge} 10",
		"meshgw_flows{kind=sink.udp} 4",
		"meshgw_auth_failures_total{} 9",
		"meshgw_auth_bans_total{} 1",
		"meshgw_auth_banned_addresses{} 1",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if !strings.Contains(out, "meshgw_build_info{goversion=go") || !strings.Contains(out, "role=control") {
		t.Errorf("build info missing:\n%s", out)
	}
	// the sending end's own view of a hop has only its resends
	if strings.Contains(out, "meshgw_relay_received_packets_total{from=ctl") {
		t.Error("packets series for the sending end of a hop")
	}
	// no NACK series for a hop whose repair figures are unknown
	if strings.Contains(out, "meshgw_relay_nacks_total{from=ingest,leg=b") {
		t.Error("NACK series for a leg without repair figures")
	}
	for _, bad := range []string{"10.1.0.", "rs-"} {
		if strings.Contains(out, bad) {
			t.Errorf("a session or address leaked into the labels: %q", bad)
		}
	}

	// a route, stream and relay that are gone leave no series
	snap := clusterSnapshot(4)
	snap.Routes, snap.Streams, snap.Relays, snap.Sessions = snap.Routes[1:], snap.Streams[1:], nil, nil
	src.mu.Lock()
	src.snap = snap
	src.mu.Unlock()
	out = gather(t, src)
	if strings.Contains(out, "route=cam") {
		t.Errorf("stale series of a deleted route:\n%s", out)
	}
}

func TestCollectorHistogramBuckets(t *testing.T) {
	m := histogram(prometheus.NewDesc("x", "x", nil, nil), []float64{0, 0.004, 0.2, 0.9}, lossBuckets)
	var dm = dtoMetric(t, m)
	h := dm.GetHistogram()
	if h.GetSampleCount() != 4 || h.GetSampleSum() < 1.103 || h.GetSampleSum() > 1.105 {
		t.Fatalf("count %d sum %g", h.GetSampleCount(), h.GetSampleSum())
	}
	want := map[float64]uint64{0: 1, 0.001: 1, 0.005: 2, 0.01: 2, 0.02: 2, 0.05: 2, 0.1: 2, 0.25: 3, 0.5: 3}
	for _, b := range h.GetBucket() {
		if b.GetCumulativeCount() != want[b.GetUpperBound()] {
			t.Errorf("bucket le=%g: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want[b.GetUpperBound()])
		}
	}
}

// TestCollectorCardinality: the series count does not depend on the number of readers.
func TestCollectorCardinality(t *testing.T) {
	count := func(readers int) int {
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(newCollector(&fixedSource{snap: clusterSnapshot(readers)}))
		n, err := testutil.GatherAndCount(reg)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if a, b := count(5), count(500); a != b {
		t.Errorf("series: %d with 5 readers, %d with 500", a, b)
	}
}

func dtoMetric(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	return &out
}
