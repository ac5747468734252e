package rtsp

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/srtp"
)

type sessionState int

const (
	stateInit sessionState = iota
	stateReady
	statePlaying
	stateRecording
)

// trackSetup is how one track of a session travels.
type trackSetup struct {
	done      bool
	tcp       bool
	channel   uint8 // RTP channel for interleaved; RTCP is channel+1
	hub       *rtp.Hub
	sink      rtp.Sink // interleaved reader sink while playing
	transport headers.Transport
	// srtp keys an interleaved reader's sink (nil: plain)
	srtp *srtp.Key
}

// session is one RTSP session: a reader (read != nil) or a publisher (pub != nil).
type session struct {
	id     string
	c      *conn // the connection that created it; interleaved media rides on it
	path   string
	base   string // URL path the session's tracks are relative to
	remote netip.AddrPort

	read        ReadStream
	pub         PublishStream
	tracks      []rtp.Track
	controls    []string // publisher's a=control values
	announceURL string
	// release frees the session's slot in the limits (set before the session is shared).
	release func()
	pubKeys []*SRTPParams // publisher's per-media SRTP keys from its ANNOUNCE (nil entries: none)

	mu     sync.Mutex
	state  sessionState
	setups []trackSetup
	closed bool

	seen atomic.Int64 // unix nanos of the last RTSP request or interleaved frame
	// recording gates a publisher's interleaved media without a lock per frame.
	recording atomic.Bool

	// rr is what an interleaved reader's RTCP receiver reports said per track (rrMu; the
	// connection's read goroutine writes, close reads)
	rrMu sync.Mutex
	rr   map[int]*rtp.ReceptionStats
}

// frameRoute is where frames on one interleaved channel go: hub is nil for a reader's channels,
// whose RTCP proves the reader alive and reports on line, the hub it reads.
type frameRoute struct {
	ss    *session
	hub   *rtp.Hub
	line  *rtp.Hub
	track int
	rtcp  bool
	// srtp unprotects an SRTP publisher's frames (nil: plain); only the connection's read
	// goroutine uses it
	srtp *srtp.Unprotector
}

func newSession(c *conn, path, base string) *session {
	ss := &session{id: newSessionID(), c: c, path: path, base: base, remote: c.remote}
	ss.touch()
	return ss
}

func (ss *session) touch() { ss.seen.Store(time.Now().UnixNano()) }

// lastLife is the latest sign that the client is still there.
func (ss *session) lastLife() time.Time {
	t := time.Unix(0, ss.seen.Load())
	var a time.Time
	if ss.read != nil {
		a = ss.read.LastActivity()
	} else if ss.pub != nil {
		a = ss.pub.LastActivity()
	}
	if a.After(t) {
		return a
	}
	return t
}

func (ss *session) header() base.HeaderValue {
	to := uint(ss.c.s.cfg.SessionTimeout / time.Second)
	return headers.Session{Session: ss.id, Timeout: &to}.Marshal()
}

// done is closed when the session's stream ends under it.
func (ss *session) done() <-chan struct{} {
	switch {
	case ss.read != nil:
		return ss.read.Done()
	case ss.pub != nil:
		return ss.pub.Done()
	}
	return nil
}

// watch ends the session when its stream ends under it, by closing the connection: the reader's
// player then sees the end of the stream instead of silence (watcher).
func (ss *session) watch() { ss.c.s.watch.add(ss, ss.done()) }

func (ss *session) isClosed() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.closed
}

func (ss *session) close(reason string) {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	ss.recording.Store(false)
	if routes := ss.c.routes.Load(); routes != nil {
		for i := range routes {
			if r := routes[i].Load(); r != nil && r.ss == ss {
				routes[i].CompareAndSwap(r, nil)
			}
		}
	}
	for i := range ss.setups {
		if st := &ss.setups[i]; st.sink != nil {
			st.hub.RemoveSink(st.sink)
			st.sink = nil
		}
	}
	ss.mu.Unlock()
	ss.c.s.watch.remove(ss, ss.done())
	ss.logReception()
	ss.c.forget(ss)
	ss.c.s.removeSession(ss)
	if ss.release != nil {
		ss.release()
	}
	if ss.read != nil {
		ss.read.Close()
	}
	if ss.pub != nil {
		ss.pub.Close()
	}
	ss.c.log.Debug("rtsp session closed", "session", ss.id, "path", ss.path, "reason", reason)
}

func (ss *session) ensureSetups() {
	if ss.setups == nil {
		ss.setups = make([]trackSetup, len(ss.tracks))
	}
}

// pickTransport chooses the first transport of the client's list that the server allows for mode
// and for the SRTP policy sp.
func (ss *session) pickTransport(ts []headers.Transport, record bool, sp srtpPolicy) (headers.Transport, bool) {
	cfg := ss.c.s.cfg
	for _, t := range ts {
		multicast := t.Delivery != nil && *t.Delivery == headers.TransportDeliveryMulticast
		if !sp.allows(t.Secure, multicast) {
			continue
		}
		if t.Mode != nil && (*t.Mode == headers.TransportModeRecord) != record {
			continue
		}
		switch {
		case t.Protocol == headers.TransportProtocolTCP:
			if cfg.AllowTCP {
				return t, true
			}
		case multicast:
			if cfg.AllowMulticast && !record {
				return t, true
			}
		default:
			if cfg.AllowUDP && t.ClientPorts != nil {
				return t, true
			}
		}
	}
	return headers.Transport{}, false
}

// allocChannel validates the client's interleaved channels or picks free ones.
func (ss *session) allocChannel(t headers.Transport, track int) (uint8, *base.Response) {
	ch := track * 2
	if t.InterleavedIDs != nil {
		ch = t.InterleavedIDs[0]
		if t.InterleavedIDs[1] != ch+1 || ch < 0 || ch > 254 {
			return 0, statusf(base.StatusBadRequest, "interleaved channels %d-%d are not a valid pair", t.InterleavedIDs[0], t.InterleavedIDs[1])
		}
	}
	if ch > 254 {
		return 0, statusf(base.StatusBadRequest, "no interleaved channel left")
	}
	// channels must be unique on the connection, across its sessions
	if routes := ss.c.routes.Load(); routes != nil && (routes[ch].Load() != nil || routes[ch+1].Load() != nil) {
		return 0, statusf(base.StatusBadRequest, "interleaved channels %d-%d already in use", ch, ch+1)
	}
	return uint8(ch), nil
}

// markChannels routes track's interleaved channels to this session; publishers' frames go to
// hub, a reader's receiver reports are read about it.
func (ss *session) markChannels(ch uint8, track int, hub *rtp.Hub, un *srtp.Unprotector) {
	var line *rtp.Hub
	if ss.read != nil {
		hub, line = nil, hub
	}
	routes := ss.c.channelRoutes()
	routes[ch].Store(&frameRoute{ss: ss, hub: hub, track: track, srtp: un})
	routes[ch+1].Store(&frameRoute{ss: ss, hub: hub, line: line, track: track, rtcp: true, srtp: un})
}

func (ss *session) setupPlay(c *conn, req *base.Request, track int, ts []headers.Transport) *base.Response {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.state == statePlaying {
		return statusf(base.StatusMethodNotValidInThisState, "SETUP while playing is not supported; PAUSE first")
	}
	if track < 0 || track >= len(ss.tracks) {
		return statusf(base.StatusNotFound, "track %d does not exist (the stream has %d)", track, len(ss.tracks))
	}
	ss.ensureSetups()
	sp := ss.readPolicy(c)
	t, ok := ss.pickTransport(ts, false, sp)
	if !ok {
		return statusf(base.StatusUnsupportedTransport, "none of the offered transports is enabled here%s", sp.why())
	}
	key, res := ss.readerKey(c, req, track, t.Secure, sp)
	if res != nil {
		return res
	}
	ctx, cancel := c.ctx()
	defer cancel()
	st := &ss.setups[track]
	if st.done {
		return statusf(base.StatusMethodNotValidInThisState, "track %d is already set up", track)
	}
	reply := headers.Transport{Protocol: t.Protocol, Secure: t.Secure}
	delivery := headers.TransportDeliveryUnicast
	switch {
	case t.Protocol == headers.TransportProtocolTCP:
		ch, res := ss.allocChannel(t, track)
		if res != nil {
			return res
		}
		hub, err := ss.read.SetupTCP(ctx, track)
		if err != nil {
			return errResponse(err)
		}
		st.tcp, st.channel, st.hub, st.srtp = true, ch, hub, key
		ss.markChannels(ch, track, hub, nil)
		reply.InterleavedIDs = &[2]int{int(ch), int(ch) + 1}
		ssrc := hub.SSRC()
		reply.SSRC = &ssrc
	case t.Delivery != nil && *t.Delivery == headers.TransportDeliveryMulticast:
		ms, err := ss.read.SetupMulticast(ctx, track)
		if err != nil {
			return errResponse(err)
		}
		delivery = headers.TransportDeliveryMulticast
		ip := net.IP(ms.Group.AsSlice())
		ttl := uint(ms.TTL)
		reply.Destination = &ip
		reply.Ports = &[2]int{ms.RTPPort, ms.RTCPPort}
		reply.TTL = &ttl
		reply.SSRC = &ms.SSRC
	default:
		if t.Destination != nil {
			d, _ := netip.AddrFromSlice(*t.Destination)
			if d.Unmap() != c.remote.Addr() {
				return statusf(base.StatusDestinationProhibited, "destination %s is not the client's address %s", d.Unmap(), c.remote.Addr())
			}
		}
		ports := t.ClientPorts
		if ports[0] <= 0 || ports[0] > 65535 || ports[1] <= 0 || ports[1] > 65535 {
			return statusf(base.StatusBadRequest, "client_port %d-%d is out of range", ports[0], ports[1])
		}
		ip := c.remote.Addr()
		rtpDst, rtcpDst := netip.AddrPortFrom(ip, uint16(ports[0])), netip.AddrPortFrom(ip, uint16(ports[1]))
		var us UDPSetup
		var err error
		if key != nil {
			us, err = ss.read.(SRTPStream).SetupSRTPUDP(ctx, track, rtpDst, rtcpDst, SRTPParams{Key: *key})
		} else {
			us, err = ss.read.SetupUDP(ctx, track, rtpDst, rtcpDst)
		}
		if err != nil {
			return errResponse(err)
		}
		src := us.Source
		if !src.IsValid() || src.IsUnspecified() {
			src = c.local.Addr()
		}
		sip := net.IP(src.AsSlice())
		reply.Source = &sip
		reply.ClientPorts = &[2]int{ports[0], ports[1]}
		reply.ServerPorts = &[2]int{us.RTPPort, us.RTCPPort}
		reply.SSRC = &us.SSRC
	}
	reply.Delivery = &delivery
	res = ss.setupDone(st, reply, headers.TransportModePlay)
	if t.Secure {
		return withKeyMgmt(res, req, *key, reply.SSRC)
	}
	return res
}

// setupDone records a track's negotiated transport and answers the SETUP.
func (ss *session) setupDone(st *trackSetup, reply headers.Transport, mode headers.TransportMode) *base.Response {
	reply.Mode = &mode
	st.done = true
	st.transport = reply
	if ss.state == stateInit {
		ss.state = stateReady
	}
	return &base.Response{StatusCode: base.StatusOK, Header: base.Header{
		"Transport": reply.Marshal(),
		"Session":   ss.header(),
	}}
}

func (ss *session) setupRecord(c *conn, req *base.Request, reqPath string, ts []headers.Transport) *base.Response {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.state == stateRecording {
		return statusf(base.StatusMethodNotValidInThisState, "SETUP while recording is not supported")
	}
	track := trackFromControl(reqPath, ss.base, ss.controls)
	if track < 0 {
		if p, n, ok := splitTrackPath(reqPath); ok && strings.Trim(p, "/") == ss.path && n < len(ss.tracks) {
			track = n
		} else {
			return statusf(base.StatusNotFound, "%s names no announced track", reqPath)
		}
	}
	ss.ensureSetups()
	st := &ss.setups[track]
	if st.done {
		return statusf(base.StatusMethodNotValidInThisState, "track %d is already set up", track)
	}
	sp := ss.recordPolicy(c, track)
	t, ok := ss.pickTransport(ts, true, sp)
	if !ok {
		return statusf(base.StatusUnsupportedTransport, "none of the offered transports is enabled for publishing (mode=record over UDP or TCP)%s", sp.why())
	}
	params, res := ss.publisherKey(req, track, t.Secure, sp)
	if res != nil {
		return res
	}
	ctx, cancel := c.ctx()
	defer cancel()
	reply := headers.Transport{Protocol: t.Protocol, Secure: t.Secure}
	if t.Protocol == headers.TransportProtocolTCP {
		ch, res := ss.allocChannel(t, track)
		if res != nil {
			return res
		}
		hub, err := ss.pub.Hub(track)
		if err != nil {
			return errResponse(err)
		}
		var un *srtp.Unprotector
		if params != nil {
			if un, err = srtp.NewUnprotector(params.Key, params.ROCs); err != nil {
				return errResponse(err)
			}
		}
		st.tcp, st.channel, st.hub = true, ch, hub
		ss.markChannels(ch, track, hub, un)
		reply.InterleavedIDs = &[2]int{int(ch), int(ch) + 1}
	} else {
		ports := t.ClientPorts
		if ports[0] <= 0 || ports[0] > 65535 || ports[1] <= 0 || ports[1] > 65535 {
			return statusf(base.StatusBadRequest, "client_port %d-%d is out of range", ports[0], ports[1])
		}
		ip := c.remote.Addr()
		rtpSrc, rtcpSrc := netip.AddrPortFrom(ip, uint16(ports[0])), netip.AddrPortFrom(ip, uint16(ports[1]))
		var us UDPSetup
		var err error
		if params != nil {
			us, err = ss.pub.(SRTPStream).SetupSRTPUDP(ctx, track, rtpSrc, rtcpSrc, *params)
		} else {
			us, err = ss.pub.SetupUDP(ctx, track, rtpSrc, rtcpSrc)
		}
		if err != nil {
			return errResponse(err)
		}
		reply.ClientPorts = &[2]int{ports[0], ports[1]}
		reply.ServerPorts = &[2]int{us.RTPPort, us.RTCPPort}
	}
	delivery := headers.TransportDeliveryUnicast
	reply.Delivery = &delivery
	res = ss.setupDone(st, reply, headers.TransportModeRecord)
	if t.Secure {
		// our key for the RTCP we would send the publisher; RFC 4567 answers a KeyMgmt with one
		k, err := srtp.NewKey()
		if err != nil {
			return errResponse(err)
		}
		return withKeyMgmt(res, req, k, nil)
	}
	return res
}

func (ss *session) onPlay(c *conn, req *base.Request) *base.Response {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.read == nil {
		return statusf(base.StatusMethodNotValidInThisState, "PLAY on a publishing session")
	}
	if ss.state == stateInit {
		return statusf(base.StatusMethodNotValidInThisState, "PLAY before SETUP")
	}
	if ss.c != c {
		return statusf(base.StatusMethodNotValidInThisState, "PLAY must come on the connection that set the session up")
	}
	if ss.state == statePlaying {
		// already playing: answer like a keepalive
		return &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": ss.header(), "Range": base.HeaderValue{"npt=now-"}}}
	}
	ctx, cancel := c.ctx()
	defer cancel()
	pos, err := ss.read.Play(ctx)
	if err != nil {
		return errResponse(err)
	}
	var info headers.RTPInfo
	cb := contentBase(req.URL)
	if _, _, has := splitTrackPath("/" + strings.Trim(req.URL.Path, "/")); has {
		cb = "rtsp://" + req.URL.Host + ss.base + "/"
	}
	for i := range ss.setups {
		st := &ss.setups[i]
		if !st.done {
			continue
		}
		if st.tcp {
			if st.srtp != nil {
				sink, err := c.writer().SRTPSink(st.channel, *st.srtp)
				if err != nil {
					return errResponse(err)
				}
				st.sink = sink
			} else {
				st.sink = c.writer().Sink(st.channel)
			}
			st.hub.AddSink(st.sink)
		}
		e := &headers.RTPInfoEntry{URL: cb + "trackID=" + itoa(i)}
		if i < len(pos) && pos[i].OK {
			seq, ts := pos[i].Seq, pos[i].TS
			e.SequenceNumber, e.Timestamp = &seq, &ts
		}
		info = append(info, e)
	}
	ss.state = statePlaying
	h := base.Header{"Session": ss.header(), "Range": base.HeaderValue{"npt=0.000-"}}
	if len(info) > 0 {
		h["RTP-Info"] = info.Marshal()
	}
	return &base.Response{StatusCode: base.StatusOK, Header: h}
}

func (ss *session) onRecord(c *conn, req *base.Request) *base.Response {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.pub == nil {
		return statusf(base.StatusMethodNotValidInThisState, "RECORD on a reading session")
	}
	if ss.state != stateReady {
		return statusf(base.StatusMethodNotValidInThisState, "RECORD needs every announced track set up first")
	}
	for i := range ss.setups {
		if !ss.setups[i].done {
			return statusf(base.StatusMethodNotValidInThisState, "track %d was announced but not set up", i)
		}
	}
	ctx, cancel := c.ctx()
	defer cancel()
	if err := ss.pub.Record(ctx); err != nil {
		return errResponse(err)
	}
	ss.state = stateRecording
	ss.recording.Store(true)
	return &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": ss.header()}}
}

func (ss *session) onPause(c *conn, req *base.Request) *base.Response {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.pub != nil {
		// RFC 2326 §10.6: PAUSE suspends a recording too (rtspclientsink sends it before
		// TEARDOWN); media is ignored until RECORD resumes it.
		if ss.state == stateRecording {
			ss.state = stateReady
			ss.recording.Store(false)
		}
		return &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": ss.header()}}
	}
	if ss.state != statePlaying {
		return &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": ss.header()}}
	}
	ctx, cancel := c.ctx()
	defer cancel()
	if err := ss.read.Pause(ctx); err != nil {
		return errResponse(err)
	}
	for i := range ss.setups {
		if st := &ss.setups[i]; st.sink != nil {
			st.hub.RemoveSink(st.sink)
			st.sink = nil
		}
	}
	ss.state = stateReady
	return &base.Response{StatusCode: base.StatusOK, Header: base.Header{"Session": ss.header()}}
}

func (ss *session) onTeardown(c *conn, req *base.Request) *base.Response {
	ss.close("teardown")
	return &base.Response{StatusCode: base.StatusOK}
}

// onFrame takes an interleaved frame the client sent on one of this session's channels. It runs
// for every frame, so it takes no lock.
func (ss *session) onFrame(r *frameRoute, b []byte) {
	ss.touch()
	if r.line != nil {
		ss.noteReports(r, b)
		return
	}
	if r.hub == nil || !ss.recording.Load() {
		return
	}
	var err error
	if r.srtp != nil {
		if r.rtcp {
			b, err = r.srtp.RTCP(b)
		} else {
			b, err = r.srtp.RTP(b)
		}
		if err != nil {
			ss.c.log.Debug("rtsp publisher sent a packet that failed SRTP", "session", ss.id, "err", err)
			return
		}
	}
	if r.rtcp {
		err = r.hub.WriteRTCP(b)
	} else {
		err = r.hub.WriteRTP(b)
	}
	if err != nil {
		ss.c.log.Debug("rtsp publisher sent a bad packet", "session", ss.id, "err", err)
	}
}

// noteReports keeps what an interleaved reader's receiver reports say about its track's line.
// An SRTP reader's SRTCP has its report blocks encrypted: their SSRC does not match the line's,
// so nothing is noted.
func (ss *session) noteReports(r *frameRoute, b []byte) {
	now := rtp.Now()
	it := rtp.NewReportBlocks(b)
	for blk, ok := it.Next(); ok; blk, ok = it.Next() {
		if blk.SSRC != r.line.SSRC() {
			continue
		}
		ss.rrMu.Lock()
		st := ss.rr[r.track]
		if st == nil {
			if ss.rr == nil {
				ss.rr = map[int]*rtp.ReceptionStats{}
			}
			st = &rtp.ReceptionStats{} // once per track of the session
			ss.rr[r.track] = st
		}
		st.Note(blk, r.line.Track().ClockRate, now, r.line.SRSentAt)
		ss.rrMu.Unlock()
	}
}

// logReception logs what an interleaved reader reported about each track, as the control does
// for UDP readers when they leave.
func (ss *session) logReception() {
	ss.rrMu.Lock()
	defer ss.rrMu.Unlock()
	for track, rr := range ss.rr {
		ss.c.log.Info("reader reception", "route", ss.path, "reader", ss.remote.Addr(), "transport", "tcp", "track", track,
			"reports", rr.Reports, "lost", rr.CumulativeLost, "fraction_lost", rr.FractionLost,
			"jitter", rr.Jitter.Round(10*time.Microsecond), "rtt", rr.RTT.Round(10*time.Microsecond))
	}
}

// String names the session in logs.
func (ss *session) String() string { return fmt.Sprintf("%s(%s)", ss.id, ss.path) }
