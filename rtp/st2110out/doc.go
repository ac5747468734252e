// Package st2110out is the per-packet part of an ST 2110 output (routes.*.outputs with st2110:,
// sink kind sink.st2110): it takes one raw video track's RTP packets from a hub, reassembles
// them into frames (rtp/st2110), and sends each frame again as RFC 4175 packets cut at line
// boundaries, timestamped from the media clock per ST 2110-10 and paced per ST 2110-21.
//
// Clock: there is no PTP here. The media clock is the host's CLOCK_REALTIME read through
// Config.Clock (time.Now by default), taken as if it were the PTP time scale: frame N of the
// clock's epoch gets RTP timestamp N×TFRAME×90000 mod 2^32 and its first packet leaves at
// N×TFRAME+TROFFSET. A PTP-disciplined clock plugs in as Config.Clock (a PHC read with
// clock_gettime on /dev/ptpN's clock ID, or the system clock kept by ptp4l/phc2sys), and the SDP
// then says a=ts-refclk:ptp=... instead of localmac.
//
// Pacing is in software: the sender sleeps until shortly before each packet's time and spins the
// rest, so on a loaded host a narrow sender may burst; the 2110-21 reading of the output is in
// the tests.
package st2110out
