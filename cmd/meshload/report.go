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
}

// PublishReport describes the synthetic streams meshload published.
type PublishReport struct {
	Publishers   int    `json:"publishers"`
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
	if r.RcvBuf >= 0 {
		rcv = fmt.Sprintf("rcvbuf %d", r.RcvBuf)
		if r.RcvBufRequested == 0 {
			rcv += ", kernel default"
		} else {
			rcv += fmt.Sprintf(" for %d asked", r.RcvBufRequested)
		}
	}
	fmt.Fprintf(&b, "meshload: %d %s readers of %s (%s), setup %.1fs, window %s\n",
		r.ReadersOK, r.Transport, strings.Join(r.Streams, " "), rcv, r.SetupSeconds, fmtSeconds(r.WindowSeconds))
	if r.ReadersFailed > 0 {
		fmt.Fprintf(&b, "failed      %d of %d readers did not set up; first: %s\n", r.ReadersFailed, r.Readers, r.FirstError)
	}
	if p := r.Publish; p != nil {
		fmt.Fprintf(&b, "publish     %d × %.1f Mbit/s over %s at %d fps: %d frames, %d packets, %d send failures\n",
			p.Publishers, float64(p.BitrateBPS)/1e6, p.Transport, p.FPS, p.Frames, p.Packets, p.SendFailures)
	}
	d := r.Delivered
	fmt.Fprintf(&b, "delivered   %.0f pkt/s  %.1f Mbit/s   source %.0f pkt/s\n", d.PktPerSec, d.BitsPerSec/1e6, d.SourcePktPerSec)
	l := r.Loss
	fmt.Fprintf(&b, "loss        %d of %d (%.4f %%), readers with loss %d, worst %.4f %%, dup %d, reordered %d\n",
		l.Lost, l.Expected, l.Percent, l.ReadersWithLoss, l.WorstPercent, l.Duplicates, l.Reorders)
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
	if g := r.Gateway; g != nil {
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
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note        %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
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
