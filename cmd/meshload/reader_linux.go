//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// schedCandidates is how many readers (the first ones, which with several
// publishers sit on different streams) record their arrivals, so that the
// floor can replay the schedule of whichever of them received the most.
const schedCandidates = 4

// readerLine is one set-up track of a reader.
type readerLine struct {
	g       *rxGroup
	i       int // line index in g
	track   int // index among the reader's set-up tracks
	ip      net.IP
	rtpPort int
}

// udpSlot is a socket a reader handed to a receive worker.
type udpSlot struct {
	w    *udpWorker
	slot int
}

// reader is one RTSP reader session.
type reader struct {
	idx    int
	route  int       // index of the route (stream URL) it reads
	url    *base.URL // aggregate control URL: PLAY, PAUSE, GET_PARAMETER, TEARDOWN
	rc     *rtspConn
	lines  []readerLine
	slots  []udpSlot
	group  *rxGroup // the connection's own group, for interleaved readers
	rcvbuf int      // receive buffer the kernel reports for the first RTP socket
	srtp   bool     // some track's RTP comes as SRTP (its description gave a key)
}

// readerEnv is what every reader's setup shares.
type readerEnv struct {
	cfg     *Config
	tls     *tls.Config // rtsps:// client configuration; nil: defaults
	clock   clock
	workers []*udpWorker // UDP readers only
	logCap  int          // schedLog entries per candidate line
}

// openReader runs DESCRIBE, SETUP (first or every track) and PLAY for reader
// idx on stream u. On failure everything it opened is closed again.
func (e *readerEnv) openReader(ctx context.Context, idx int, u *base.URL) (r *reader, err error) {
	tcp := e.cfg.Transport == "tcp"
	bufSize := rtspSmallBuf
	if tcp {
		bufSize = rtspInterleaveBuf
	}
	rc, err := dialRTSP(ctx, u, e.tls, e.cfg.Timeout, bufSize)
	if err != nil {
		return nil, err
	}
	r = &reader{idx: idx, rc: rc, rcvbuf: -1}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	res, err := rc.request(base.Describe, u, base.Header{"Accept": base.HeaderValue{"application/sdp"}}, nil)
	if err != nil {
		return r, err
	}
	cb := contentBase(res, u)
	medias, err := sdpMedias(res.Body, cb)
	if err != nil {
		return r, fmt.Errorf("DESCRIBE %s: %w", u, err)
	}
	if e.cfg.Tracks == "first" {
		medias = medias[:1]
	}
	if r.url, err = base.ParseURL(cb); err != nil {
		return r, fmt.Errorf("content base %q: %w", cb, err)
	}
	if tcp {
		r.group = &rxGroup{}
	}
	for k, m := range medias {
		cu, err := base.ParseURL(m.control)
		if err != nil {
			return r, fmt.Errorf("track %d control %q: %w", k, m.control, err)
		}
		if e.cfg.SRTP && !m.keyed {
			return r, fmt.Errorf("DESCRIBE %s: track %d has no SRTP key (a=crypto or a=key-mgmt) and -srtp is set: the route does not serve SRTP here (plain rtsp://, or srtp: off)", u, k)
		}
		r.srtp = r.srtp || m.keyed
		var rec *schedLog
		if idx < schedCandidates && e.logCap > 0 {
			rec = &schedLog{e: make([]schedEntry, e.logCap)}
		}
		var transport string
		if tcp {
			r.lines = append(r.lines, readerLine{g: r.group, i: r.group.addLine(k, rec, m.keyed), track: k})
			transport = fmt.Sprintf("RTP/AVP/TCP;unicast;interleaved=%d-%d", 2*k, 2*k+1)
		} else {
			port, err := r.udpLine(e, k, rec, m.keyed)
			if err != nil {
				return r, err
			}
			transport = fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d", port, port+1)
		}
		if _, err := rc.request(base.Setup, cu, base.Header{"Transport": base.HeaderValue{transport}}, nil); err != nil {
			return r, err
		}
	}
	if tcp {
		if err := rc.startDemux(r.onFrame(e.clock)); err != nil {
			return r, err
		}
	}
	if _, err := rc.request(base.Play, r.url, base.Header{"Range": base.HeaderValue{"npt=0.000-"}}, nil); err != nil {
		return r, err
	}
	return r, nil
}

// udpLine opens the RTP/RTCP sockets of track k (srtp: its RTP comes encrypted) on the address our RTSP
// connection uses (the one the server sends to), hands them to the reader's
// receive worker and returns the RTP port.
func (r *reader) udpLine(e *readerEnv, k int, rec *schedLog, srtp bool) (int, error) {
	w := e.workers[r.idx%len(e.workers)]
	ip := r.rc.localAddr().IP
	rtpFd, rtcpFd, port, err := udpPair(ip, true)
	if err != nil {
		return 0, err
	}
	line := w.g.addLine(k, rec, srtp)
	r.lines = append(r.lines, readerLine{g: w.g, i: line, track: k, ip: ip, rtpPort: port})
	var first error
	for _, s := range []struct {
		fd   int
		rtcp bool
	}{{rtpFd, false}, {rtcpFd, true}} {
		slot, err := w.add(s.fd, line, s.rtcp)
		r.slots = append(r.slots, udpSlot{w: w, slot: slot})
		if err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return 0, fmt.Errorf("track %d: %w", k, first)
	}
	eff, err := setRcvBuf(rtpFd, e.cfg.RcvBuf)
	if err != nil {
		return 0, fmt.Errorf("track %d: %w", k, err)
	}
	if k == 0 {
		r.rcvbuf = eff
	}
	return port, nil
}

// onFrame returns the handler of an interleaved reader's frames: channel 2k
// is track k's RTP, 2k+1 its RTCP.
func (r *reader) onFrame(c clock) func(ch uint8, payload []byte) {
	g, n := r.group, len(r.lines)
	return func(ch uint8, p []byte) {
		k := int(ch >> 1)
		if k >= n {
			return
		}
		now := c.now()
		g.mu.Lock()
		if ch&1 == 0 {
			g.onRTP(k, p, now)
		} else {
			g.onRTCP(k)
		}
		g.mu.Unlock()
	}
}

// pause stops the gateway's delivery to the reader; its sockets stay open.
func (r *reader) pause() error {
	_, err := r.rc.request(base.Pause, r.url, nil, nil)
	return err
}

// teardown ends the session politely and closes the connection.
func (r *reader) teardown() error {
	var err error
	if r.url != nil {
		_, err = r.rc.request(base.Teardown, r.url, nil, nil)
	}
	r.rc.close()
	return err
}

// close closes the connection and the reader's sockets, for a reader whose
// setup failed; readers that played are closed by the run after its
// receive workers stopped.
func (r *reader) close() {
	r.rc.close()
	for _, s := range r.slots {
		s.w.close(s.slot)
	}
}
