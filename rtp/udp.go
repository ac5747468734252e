package rtp

import (
	"errors"
	"log/slog"
	"net/netip"
)

// UDPConfig configures a UDPPair.
type UDPConfig struct {
	RTPAddr            string // "host:port"; port 0 = pick a free even/odd pair automatically
	QueueLen           int    // per-sink bounded queue (default 512 packets)
	MulticastTTL       int    // for multicast destinations (default 1)
	MulticastInterface string // optional interface name for multicast egress
	Logger             *slog.Logger
}

// UDPPair is a node's shared RTP/RTCP socket pair.
type UDPPair struct{}

// ListenUDP opens the socket pair.
func ListenUDP(cfg UDPConfig) (*UDPPair, error) { return nil, errors.ErrUnsupported }

// RTPPort returns the RTP (even) port.
func (u *UDPPair) RTPPort() int { return 0 }

// RTCPPort returns the RTCP (odd) port.
func (u *UDPPair) RTCPPort() int { return 0 }

// LocalAddr returns the bound address.
func (u *UDPPair) LocalAddr() netip.Addr { return netip.Addr{} }

// NewSink returns a sink sending to rtpDst/rtcpDst.
func (u *UDPPair) NewSink(rtpDst, rtcpDst netip.AddrPort) *UDPSink { return &UDPSink{} }

// HandleRTP registers an RTP ingress handler for remote.
func (u *UDPPair) HandleRTP(remote netip.AddrPort, fn func(b []byte)) {}

// HandleRTCP registers an RTCP ingress handler for remote.
func (u *UDPPair) HandleRTCP(remote netip.AddrPort, fn func(b []byte)) {}

// Close ends the pair's goroutines and closes its sockets.
func (u *UDPPair) Close() error { return nil }

// UDPSink sends one reader's track over the pair.
type UDPSink struct{}

// DeliverRTP implements Sink.
func (s *UDPSink) DeliverRTP(p *Packet) { p.Release() }

// DeliverRTCP implements Sink.
func (s *UDPSink) DeliverRTCP(p *Packet) { p.Release() }

// Stats returns the sink's counters.
func (s *UDPSink) Stats() SinkStats { return SinkStats{} }

// Close stops sending.
func (s *UDPSink) Close() {}
