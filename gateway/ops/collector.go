package ops

import (
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// collector turns a fresh Snapshot into metrics at every scrape, so a route or relay that is
// gone leaves no series behind. Labels come only from bounded sets (route, track, node, kind,
// leg, transport, reason), never from sessions or addresses.
type collector struct {
	src Source

	buildInfo *prometheus.Desc
	up        *prometheus.Desc
	readers   *prometheus.Desc
	pubs      *prometheus.Desc
}

func newCollector(src Source) *collector {
	return &collector{
		src: src,
		buildInfo: prometheus.NewDesc("meshgw_build_info", "Always 1; the labels name the build.",
			[]string{"version", "revision", "goversion"}, nil),
		up: prometheus.NewDesc("meshgw_stream_up", "1 when the route's stream is live, 0 when starting or down.",
			[]string{"route"}, nil),
		readers: prometheus.NewDesc("meshgw_route_readers", "Readers playing the route, by transport.",
			[]string{"route", "transport"}, nil),
		pubs: prometheus.NewDesc("meshgw_route_publishers", "Publishers recording to the route (0 or 1).",
			[]string{"route"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.buildInfo
	ch <- c.up
	ch <- c.readers
	ch <- c.pubs
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	v, rev, gov := buildInfo()
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, v, rev, gov)
	snap := c.src.Snapshot()
	for _, st := range snap.Streams {
		up := 0.0
		if st.State == "live" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, st.Route)
		for tr, n := range st.Readers {
			ch <- prometheus.MustNewConstMetric(c.readers, prometheus.GaugeValue, float64(n), st.Route, tr)
		}
		ch <- prometheus.MustNewConstMetric(c.pubs, prometheus.GaugeValue, float64(st.Publishers), st.Route)
	}
}

// buildInfo is the module version, VCS revision and Go version of the running binary.
func buildInfo() (version, revision, goVersion string) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown", "", ""
	}
	version = bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return version, revision, bi.GoVersion
}

// promLog hands promhttp's errors to slog.
type promLog struct{ log *slog.Logger }

func (l promLog) Println(v ...any) { l.log.Error("metrics", "err", v) }
