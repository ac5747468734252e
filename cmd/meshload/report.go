//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is the outcome of one run; -json prints it as one object.
type Report struct {
	URL             string   `json:"url"`
	Streams         []string `json:"streams"`
	Transport       string   `json:"transport"`
	Tracks          string   `json:"tracks"`
	Readers         int      `json:"readers"`
	ReadersOK       int      `json:"readers_ok"`
	ReadersFailed   int      `json:"readers_failed"`
	FirstError      string   `json:"first_error,omitempty"`
	SetupSeconds    float64  `json:"setup_seconds"`
	RcvBufRequested int      `json:"rcvbuf_requested"`
	// RcvBuf is SO_RCVBUF as the kernel reports it (it counts its own
	// bookkeeping, so typically twice what was set); -1 when not applicable.
	RcvBuf        int     `json:"rcvbuf_effective"`
	WindowSeconds float64 `json:"window_seconds"`
	// RoutesReadySeconds is how long every route took to answer DESCRIBE
	// (-wait-routes); 0 when not waited for.
	RoutesReadySeconds float64 `json:"routes_ready_seconds,omitempty"`
	// Routes is delivery and loss per route, with more than one route.
	Routes *RoutesReport `json:"routes,omitempty"`

	Publish   *PublishReport `json:"publish,omitempty"`
	Delivered DeliveryReport `json:"delivered"`
	Loss      LossReport     `json:"loss"`
	Latency   *LatencyReport `json:"latency,omitempty"`
	// LatencyUnavailable says why latency is missing or covers only some readers
	// (SRTP readers, whose payloads are encrypted).
	LatencyUnavailable string `json:"latency_unavailable,omitempty"`
	// SRTPReaders is how many readers' descriptions keyed their tracks, so that
	// the gateway sent them SRTP.
	SRTPReaders int `json:"srtp_readers"`
	// ClearSRTPPayloads counts packets to SRTP readers whose payload still read
	// as meshload's clear header: 0 unless the gateway failed to encrypt.
	ClearSRTPPayloads uint64       `json:"clear_srtp_payloads"`
	Gateway           *CPUReport   `json:"gateway,omitempty"`
	Floor             *FloorReport `json:"floor,omitempty"`
	// Ratio is the gateway's CPU per delivered packet over the floor's.
	Ratio float64   `json:"ratio,omitempty"`
	Self  CPUReport `json:"meshload"`

	RTCPPackets     uint64   `json:"rtcp_packets"`
	StrayPackets    uint64   `json:"stray_packets"`
	Disconnected    int      `json:"disconnected_readers"`
	KeepaliveErrors int      `json:"keepalive_errors"`
	RxErrors        uint64   `json:"rx_errors"`
	Truncated       uint64   `json:"truncated_packets"`
	Notes           []string `json:"notes,omitempty"`

	// MaxSilenceMS is the longest time any reader line went without an RTP
	// packet in the window (a line's trailing silence at the end included).
	MaxSilenceMS float64 `json:"max_silence_ms"`
	// Silences are the stretches of at least 250 ms without packets, per
	// reader line; a long run (scripts/soak.sh) matches them with its events.
	Silences []SilenceReport `json:"silences,omitempty"`
	// SilencesDropped counts silences beyond the 256 each line records.
	SilencesDropped int `json:"silences_dropped,omitempty"`
}

// SilenceReport is one stretch without packets on one reader's track.
type SilenceReport struct {
	Reader    int     `json:"reader"`
	Track     int     `json:"track"`
	EndUnixMS int64   `json:"end_unix_ms"` // when the next packet came (or the window ended)
	MS        float64 `json:"ms"`
}

// RoutesReport is delivery and loss per route over the window, and how
// loss spreads over the routes.
type RoutesReport struct {
	Routes         int           `json:"routes"`
	MinReaders     int           `json:"min_readers"` // readers playing on the route with the fewest
	MaxReaders     int           `json:"max_readers"`
	Delivered      uint64        `json:"delivered"` // packets, all routes
	MinPercent     float64       `json:"loss_min_percent"`
	MedianPercent  float64       `json:"loss_median_percent"`
	MaxPercent     float64       `json:"loss_max_percent"`
	RoutesWithLoss int           `json:"routes_with_loss"`
	PerRoute       []RouteReport `json:"per_route"`
}

// RouteReport is one route's readers over the window.
type RouteReport struct {
	URL       string        `json:"url"`
	Readers   int           `json:"readers"`
	Delivered uint64        `json:"delivered"`
	Expected  uint64        `json:"expected"`
	Lost      uint64        `json:"lost"`
	Percent   float64       `json:"loss_percent"`
	Tracks    []TrackReport `json:"tracks"`
}

// TrackReport is one track of a route, summed over its readers' lines; each
// line counts loss per SSRC (sequence gaps of each SSRC on its own).
type TrackReport struct {
	Track    int     `json:"track"`
	Lines    int     `json:"lines"` // readers that set the track up
	Expected uint64  `json:"expected"`
	Received uint64  `json:"received"`
	Lost     uint64  `json:"lost"`
	Percent  float64 `json:"loss_percent"`
	// MaxSSRCs is the most SSRCs one reader received on this track in the
	// window: 1 for a continuous stream.
	MaxSSRCs int `json:"max_ssrcs"`
}

// PublishReport describes the synthetic streams meshload published.
type PublishReport struct {
	Publishers   int    `json:"publishers"`
	URL          string `json:"url,omitempty"` // -publish-url (an origin); "" when published to the routes
	Transport    string `json:"transport"`
	BitrateBPS   int    `json:"bitrate_bps"`
	FPS          int    `json:"fps"`
	Frames       uint64 `json:"frames"`
	Packets      uint64 `json:"packets"`
	SendFailures uint64 `json:"send_failures"`
}

// DeliveryReport is what all readers received in the window.
type DeliveryReport struct {
	Packets         uint64  `json:"packets"`
	PktPerSec       float64 `json:"pkt_per_sec"`
	BitsPerSec      float64 `json:"bits_per_sec"`
	SourcePktPerSec float64 `json:"source_pkt_per_sec"` // the best reader's rate
}

// LossReport sums the readers' RFC 3550 loss accounting over the window.
type LossReport struct {
	Lost            uint64  `json:"lost"`
	Expected        uint64  `json:"expected"`
	Percent         float64 `json:"percent"`
	ReadersWithLoss int     `json:"readers_with_loss"`
	WorstPercent    float64 `json:"worst_reader_percent"`
	Duplicates      uint64  `json:"duplicates"`
	Reorders        uint64  `json:"reorders"`
}

// LatencyReport is send-to-receive time of packets carrying the load header.
type LatencyReport struct {
	Samples uint64  `json:"samples"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	MaxUS   float64 `json:"max_us"`
}

// CPUReport is a process's (or thread's) CPU over a window.
type CPUReport struct {
	PID         int     `json:"pid,omitempty"`
	CorePercent float64 `json:"core_percent"`
	USPerPkt    float64 `json:"us_per_pkt,omitempty"`
	RSSBytes    uint64  `json:"rss_bytes,omitempty"`
}

// FloorReport is the raw sendmmsg relay's run over the same readers.
type FloorReport struct {
	CorePercent  float64        `json:"core_percent"`
	USPerPkt     float64        `json:"us_per_pkt"`
	Seconds      float64        `json:"seconds"`
	Sent         uint64         `json:"sent_packets"` // per reader line, summed over tracks
	Delivered    uint64         `json:"delivered"`
	Expected     uint64         `json:"expected"`
	Lost         uint64         `json:"lost"`
	LossPercent  float64        `json:"loss_percent"`
	SendFailures uint64         `json:"send_failures"`
	Latency      *LatencyReport `json:"latency,omitempty"`
	// GatewayCorePercent is the gateway's CPU while its readers were paused
	// and the floor ran: its cost without fan-out (ingest, timers).
	GatewayCorePercent *float64 `json:"gateway_core_percent,omitempty"`
}

// writeJSON prints r as one JSON object.
func (r *Report) writeJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(r)
}

// writeTable prints r for people, one aspect per line.
func (r *Report) writeTable(w io.Writer) error {
	var b strings.Builder
	rcv := "kernel TCP buffers"
	if r.ReadersOK == 0 {
		rcv = "no reader"
	} else if r.RcvBuf >= 0 {
		rcv = fmt.Sprintf("rcvbuf %d", r.RcvBuf)
		if r.RcvBufRequested == 0 {
			rcv += ", kernel default"
		} else {
			rcv += fmt.Sprintf(" for %d asked", r.RcvBufRequested)
		}
	}
	fmt.Fprintf(&b, "meshload: %d %s readers of %s (%s), setup %.1fs, window %s\n",
		r.ReadersOK, r.Transport, fmtStreams(r.Streams), rcv, r.SetupSeconds, fmtSeconds(r.WindowSeconds))
	if r.ReadersFailed > 0 {
		fmt.Fprintf(&b, "failed      %d of %d readers did not set up; first: %s\n", r.ReadersFailed, r.Readers, r.FirstError)
	}
	if p := r.Publish; p != nil {
		fmt.Fprintf(&b, "publish     %d × %.1f Mbit/s over %s at %d fps: %d frames, %d packets, %d send failures\n",
			p.Publishers, float64(p.BitrateBPS)/1e6, p.Transport, p.FPS, p.Frames, p.Packets, p.SendFailures)
		if p.URL != "" {
			fmt.Fprintf(&b, "origin      published to %s, which the routes pull\n", p.URL)
		}
	}
	if r.RoutesReadySeconds > 0 {
		fmt.Fprintf(&b, "routes up   all answered DESCRIBE after %.1fs\n", r.RoutesReadySeconds)
	}
	d := r.Delivered
	fmt.Fprintf(&b, "delivered   %.0f pkt/s  %.1f Mbit/s   source %.0f pkt/s\n", d.PktPerSec, d.BitsPerSec/1e6, d.SourcePktPerSec)
	l := r.Loss
	fmt.Fprintf(&b, "loss        %d of %d (%.4f %%), readers with loss %d, worst %.4f %%, dup %d, reordered %d\n",
		l.Lost, l.Expected, l.Percent, l.ReadersWithLoss, l.WorstPercent, l.Duplicates, l.Reorders)
	if rr := r.Routes; rr != nil {
		writeRoutes(&b, rr)
	}
	if lt := r.Latency; lt != nil {
		fmt.Fprintf(&b, "latency     p50 %s  p99 %s  max %s\n", fmtUS(lt.P50us), fmtUS(lt.P99us), fmtUS(lt.MaxUS))
	}
	if r.LatencyUnavailable != "" {
		what := "unavailable"
		if r.Latency != nil {
			what = "of plain readers only"
		}
		fmt.Fprintf(&b, "latency     %s: %s\n", what, r.LatencyUnavailable)
	}
	if r.SRTPReaders > 0 {
		fmt.Fprintf(&b, "srtp        %d readers receive SRTP, %d packets with a clear payload\n", r.SRTPReaders, r.ClearSRTPPayloads)
	}
	if g := r.Gateway; g != nil && r.Delivered.Packets == 0 {
		fmt.Fprintf(&b, "gateway     %.1f %% of a core, nothing delivered, RSS %.1f MB\n", g.CorePercent, float64(g.RSSBytes)/1e6)
	} else if g != nil {
		fmt.Fprintf(&b, "gateway     %.1f %% of a core, %.2f µs/pkt, RSS %.1f MB\n", g.CorePercent, g.USPerPkt, float64(g.RSSBytes)/1e6)
	} else {
		b.WriteString("gateway     CPU not measured (no -pid)\n")
	}
	if f := r.Floor; f != nil {
		fmt.Fprintf(&b, "floor       %.1f %% of a core, %.2f µs/pkt, loss %.4f %% (%d of %d)", f.CorePercent, f.USPerPkt, f.LossPercent, f.Lost, f.Expected)
		if f.Latency != nil {
			fmt.Fprintf(&b, ", latency p50 %s p99 %s", fmtUS(f.Latency.P50us), fmtUS(f.Latency.P99us))
		}
		b.WriteByte('\n')
		if r.Ratio > 0 {
			fmt.Fprintf(&b, "ratio       %.2f × floor\n", r.Ratio)
		}
	}
	fmt.Fprintf(&b, "meshload    %.1f %% of a core\n", r.Self.CorePercent)
	if r.Disconnected > 0 || r.KeepaliveErrors > 0 || r.RxErrors > 0 || r.Truncated > 0 {
		fmt.Fprintf(&b, "trouble     %d readers disconnected, %d keepalive errors, %d receive errors, %d truncated packets\n",
			r.Disconnected, r.KeepaliveErrors, r.RxErrors, r.Truncated)
	}
	if len(r.Silences) > 0 {
		fmt.Fprintf(&b, "silence     %d stretches of 250 ms or more without packets (+%d not listed), longest %.0f ms\n",
			len(r.Silences), r.SilencesDropped, r.MaxSilenceMS)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note        %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fmtStreams lists the routes read, eliding the middle of a long list.
func fmtStreams(s []string) string {
	if len(s) <= 4 {
		return strings.Join(s, " ")
	}
	return fmt.Sprintf("%s %s … %s (%d routes)", s[0], s[1], s[len(s)-1], len(s))
}

// maxRouteLines is how many routes with loss the table lists one by one
// (-json has them all).
const maxRouteLines = 10

// writeRoutes prints the spread of loss over the routes, then the routes
// that lost packets, each track on its own.
func writeRoutes(b *strings.Builder, rr *RoutesReport) {
	fmt.Fprintf(b, "routes      %d, %d–%d readers each, delivered %d pkt; loss per route min %.4f %% median %.4f %% max %.4f %%, routes with loss %d\n",
		rr.Routes, rr.MinReaders, rr.MaxReaders, rr.Delivered, rr.MinPercent, rr.MedianPercent, rr.MaxPercent, rr.RoutesWithLoss)
	listed := 0
	for _, r := range rr.PerRoute {
		if r.Lost == 0 {
			continue
		}
		if listed == maxRouteLines {
			fmt.Fprintf(b, "route       … %d more routes with loss (-json lists all)\n", rr.RoutesWithLoss-listed)
			break
		}
		listed++
		fmt.Fprintf(b, "route       %s: %d readers", r.URL, r.Readers)
		for _, t := range r.Tracks {
			fmt.Fprintf(b, "; track %d lost %d of %d (%.4f %%), ≤%d SSRC", t.Track, t.Lost, t.Expected, t.Percent, t.MaxSSRCs)
		}
		b.WriteByte('\n')
	}
}

// fmtUS prints microseconds with a unit that keeps two or three digits.
func fmtUS(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.3gms", us/1e3)
	default:
		return fmt.Sprintf("%.3gs", us/1e6)
	}
}

func fmtSeconds(s float64) string {
	return (time.Duration(s*10) * time.Second / 10).String()
}
