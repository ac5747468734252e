// Package pull ingests streams from upstream RTSP servers and cameras: a
// supervised gortsplib client that reconnects with capped exponential
// backoff and hands every session's description and packets to an
// rtp.SourceHandler: OnReady after each successful DESCRIBE, SETUP and PLAY
// (on every reconnect; an error aborts the session, which is retried with
// backoff), OnDisconnect with ErrClosed after Close.
package pull

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	pionrtp "github.com/pion/rtp"

	"github.com/meshgw/meshgw/rtp"
)

// Defaults applied to zero Config fields.
const (
	DefaultReconnectMin = time.Second
	DefaultReconnectMax = 30 * time.Second
	DefaultReadTimeout  = 10 * time.Second
	// stableAfter is how long a session must have played for the next
	// reconnect to start again from ReconnectMin: a camera that drops every
	// few seconds should not be hammered at the minimum interval forever.
	stableAfter = 10 * time.Second
	// logEvery rate-limits per-packet complaints (decode errors, losses).
	logEvery = 10 * time.Second
)

// ErrClosed is the error OnDisconnect receives when the session ended
// because the Puller was closed.
var ErrClosed = errors.New("pull: closed")

// Config configures a Puller.
type Config struct {
	// URL is the upstream, rtsp:// or rtsps://, optionally with
	// user:password@ for Basic or Digest authentication.
	URL string
	// Transport is "auto" (the default: UDP, falling back to TCP when the
	// server refuses UDP or no UDP packet arrives), "udp" or "tcp".
	Transport string
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// attempts; defaults DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// ReadTimeout bounds each RTSP response and the silence tolerated from
	// a playing upstream; default DefaultReadTimeout.
	ReadTimeout time.Duration
	// TLSConfig is used for rtsps:// (nil: system roots, name from URL).
	TLSConfig *tls.Config
	// Logger receives the Puller's logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports a Config that can never work, so it is refused once
// instead of retried forever.
func (c Config) Validate() error {
	u, err := base.ParseURL(c.URL)
	if err != nil {
		return fmt.Errorf("pull: invalid URL: %w", err)
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return fmt.Errorf("pull: URL scheme %q, want rtsp or rtsps", u.Scheme)
	}
	switch strings.ToLower(c.Transport) {
	case "", "auto", "udp", "tcp":
	default:
		return fmt.Errorf("pull: transport %q, want auto, udp or tcp", c.Transport)
	}
	if c.ReconnectMin < 0 || c.ReconnectMax < 0 || c.ReadTimeout < 0 {
		return errors.New("pull: negative duration")
	}
	return nil
}

// Status is the phase a Puller is in.
type Status int

// The phases of a Puller.
const (
	StatusIdle       Status = iota // not started
	StatusConnecting               // DESCRIBE/SETUP/PLAY in progress
	StatusPlaying                  // receiving
	StatusBackoff                  // waiting before the next attempt
	StatusFailed                   // the Config is invalid; no retries
	StatusClosed                   // Close was called
)

// String names the status for logs and the status page.
func (s Status) String() string {
	switch s {
	case StatusIdle:
		return "idle"
	case StatusConnecting:
		return "connecting"
	case StatusPlaying:
		return "playing"
	case StatusBackoff:
		return "backoff"
	case StatusFailed:
		return "failed"
	case StatusClosed:
		return "closed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// State is a snapshot of a Puller for status pages and health checks.
type State struct {
	Status Status
	// Since is when Status was entered.
	Since time.Time
	// Err is what ended the last session or attempt (nil before any).
	Err error
	// Transport is "udp" or "tcp" while playing.
	Transport string
	// Retry is the wait before the next attempt, while in backoff.
	Retry time.Duration
	// Sessions counts sessions that reached OnReady.
	Sessions int
}

// Puller keeps one upstream session alive.
type Puller struct {
	cfg    Config
	h      rtp.SourceHandler
	logger *slog.Logger
	url    string // redacted, for logs and errors

	// test hooks
	stableAfter time.Duration
	onBackoff   func(nominal time.Duration)

	mu       sync.Mutex
	state    State
	client   *gortsplib.Client // the live client, for Close to abort
	started  bool
	closed   bool
	done     chan struct{}
	finished chan struct{}

	closeOnce sync.Once
}

// New returns a Puller for cfg feeding h. It does nothing until Start.
func New(cfg Config, h rtp.SourceHandler) *Puller {
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = DefaultReconnectMin
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = DefaultReconnectMax
	}
	cfg.ReconnectMax = max(cfg.ReconnectMax, cfg.ReconnectMin)
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	red := redact(cfg.URL)
	return &Puller{
		cfg:         cfg,
		h:           h,
		logger:      logger.With("url", red),
		url:         red,
		stableAfter: stableAfter,
		state:       State{Status: StatusIdle, Since: time.Now()},
		done:        make(chan struct{}),
		finished:    make(chan struct{}),
	}
}

// redact hides the password: URLs end up in logs, errors and status pages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// Start begins pulling in a goroutine owned by the Puller. Calling it again,
// or after Close, does nothing.
func (p *Puller) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	go p.run()
}

// Close stops the Puller: it aborts the current session or backoff, closes
// the client and waits for its goroutines. It is idempotent.
func (p *Puller) Close() {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.done)
		c := p.client
		started := p.started
		p.setStateLocked(StatusClosed, p.state.Err)
		p.mu.Unlock()
		if c != nil {
			c.Close()
		}
		if started {
			<-p.finished
		}
	})
}

// State returns a snapshot of the Puller's state.
func (p *Puller) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

func (p *Puller) setStateLocked(s Status, err error) {
	if p.state.Status == StatusClosed {
		return
	}
	p.state.Status, p.state.Since, p.state.Err = s, time.Now(), err
	if s != StatusPlaying {
		p.state.Transport = ""
	}
	if s != StatusBackoff {
		p.state.Retry = 0
	}
}

func (p *Puller) setState(s Status, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setStateLocked(s, err)
}

func (p *Puller) run() {
	defer close(p.finished)
	if err := p.cfg.Validate(); err != nil {
		p.logger.Error("not pulling: invalid config", "err", err)
		p.setState(StatusFailed, err)
		return
	}
	backoff := p.cfg.ReconnectMin
	for {
		p.setState(StatusConnecting, p.State().Err)
		playedFor, err := p.session()
		if p.isClosed() {
			return
		}
		if playedFor > 0 && playedFor >= p.stableAfter {
			backoff = p.cfg.ReconnectMin
		}
		wait := jitter(backoff)
		p.logger.Warn("upstream session ended; retrying", "err", err, "retry_in", wait)
		p.mu.Lock()
		p.setStateLocked(StatusBackoff, err)
		p.state.Retry = wait
		p.mu.Unlock()
		if p.onBackoff != nil {
			p.onBackoff(backoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-p.done:
			t.Stop()
			return
		}
		backoff = min(2*backoff, p.cfg.ReconnectMax)
	}
}

// jitter shortens a wait by up to a quarter, so pullers of one upstream
// that lost it together do not reconnect in lockstep.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Int64N(int64(d)/4+1))
}

func (p *Puller) isClosed() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// session runs one upstream session to its end and reports how long it
// played (0 if it never reached OnReady) and why it ended.
func (p *Puller) session() (time.Duration, error) {
	u, err := base.ParseURL(p.cfg.URL)
	if err != nil {
		return 0, fmt.Errorf("pull %s: %w", p.url, err)
	}
	var transport *gortsplib.Transport
	tname := "udp"
	switch strings.ToLower(p.cfg.Transport) {
	case "udp":
		v := gortsplib.TransportUDP
		transport = &v
	case "tcp":
		v := gortsplib.TransportTCP
		transport, tname = &v, "tcp"
	}
	var switched atomic.Bool
	s := &session{p: p, ready: make(chan struct{})}
	c := &gortsplib.Client{
		Scheme:       u.Scheme,
		Host:         u.Host,
		ReadTimeout:  p.cfg.ReadTimeout,
		WriteTimeout: p.cfg.ReadTimeout,
		TLSConfig:    p.cfg.TLSConfig,
		Transport:    transport,
		OnTransportSwitch: func(err error) {
			switched.Store(true)
			p.logger.Info("switching to TCP", "reason", err)
			p.mu.Lock()
			if p.state.Status == StatusPlaying {
				p.state.Transport = "tcp"
			}
			p.mu.Unlock()
		},
		OnPacketsLost: func(n uint64) { s.lost.Add(n); s.complain("packets lost upstream", nil) },
		OnDecodeError: func(err error) { s.complain("upstream decode error", err) },
	}
	if err := c.Start2(); err != nil {
		return 0, fmt.Errorf("pull %s: start client: %w", p.url, err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return 0, ErrClosed
	}
	p.client = c
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.client = nil
		p.mu.Unlock()
		c.Close()
	}()
	// deferred after c.Close, so it runs first: callbacks parked on ready
	// must be released before Close can wait for their goroutines
	defer s.release()

	desc, res, err := c.Describe(u)
	if err != nil {
		return 0, p.wrap("DESCRIBE", err)
	}
	sdp := append([]byte(nil), res.Body...)
	if len(desc.Medias) == 0 {
		return 0, fmt.Errorf("pull %s: upstream offers no media", p.url)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return 0, p.wrap("SETUP", err)
	}

	tracks := make([]rtp.Track, len(desc.Medias))
	s.bufs = make([][]byte, len(desc.Medias))
	for i, m := range desc.Medias {
		tracks[i] = trackOf(m)
		s.bufs[i] = make([]byte, 1500)
		for _, f := range m.Formats {
			c.OnPacketRTP(m, f, func(pkt *pionrtp.Packet) { s.rtp(i, pkt) })
		}
		c.OnPacketRTCP(m, func(pkt rtcp.Packet) { s.rtcp(i, pkt) })
	}

	if _, err := c.Play(nil); err != nil {
		return 0, p.wrap("PLAY", err)
	}
	if err := p.h.OnReady(sdp, tracks); err != nil {
		return 0, fmt.Errorf("pull %s: handler refused the session: %w", p.url, err)
	}
	start := time.Now()
	p.mu.Lock()
	p.state.Sessions++
	p.setStateLocked(StatusPlaying, nil)
	if switched.Load() {
		tname = "tcp"
	}
	p.state.Transport = tname
	p.mu.Unlock()
	p.logger.Info("playing", "tracks", len(tracks), "transport", tname)
	s.open()

	err = c.Wait()
	s.shut()
	playedFor := time.Since(start)
	if p.isClosed() {
		err = ErrClosed
	} else {
		err = p.wrap("session", err)
	}
	p.h.OnDisconnect(err)
	return max(playedFor, 1), err // > 0: it played
}

func (p *Puller) wrap(step string, err error) error {
	if p.isClosed() {
		return ErrClosed
	}
	return fmt.Errorf("pull %s: %s: %w", p.url, step, err)
}

// trackOf describes a media by its first format, the one upstream prefers.
func trackOf(m *description.Media) rtp.Track {
	t := rtp.Track{Media: string(m.Type)}
	if len(m.Formats) > 0 {
		f := m.Formats[0]
		t.PayloadType = f.PayloadType()
		t.ClockRate = uint32(clockRate(f))
	}
	return t
}

func clockRate(f format.Format) int {
	if r := f.ClockRate(); r > 0 {
		return r
	}
	return 90000 // RFC 3551 default for unknown video-like formats
}

// session is the per-session packet path. Its callbacks run on gortsplib's
// reader goroutines: one per track for RTP over UDP, one for TCP.
type session struct {
	p     *Puller
	ready chan struct{} // closed when packets may flow (or never will)
	live  atomic.Bool   // packets go to the handler
	rel   sync.Once
	bufs  [][]byte // per track, reused for every packet of that track
	lost  atomic.Uint64

	logMu   sync.Mutex
	lastLog time.Time
	muted   int
}

func (s *session) open() {
	s.live.Store(true)
	s.release()
}

func (s *session) release() { s.rel.Do(func() { close(s.ready) }) }

func (s *session) shut() { s.live.Store(false) }

func (s *session) rtp(track int, pkt *pionrtp.Packet) {
	// hold packets that race OnReady rather than drop them: the first
	// ones after PLAY are often the keyframe a decoder needs
	<-s.ready
	if !s.live.Load() {
		return
	}
	n := pkt.MarshalSize()
	if cap(s.bufs[track]) < n {
		s.bufs[track] = make([]byte, n)
	}
	buf := s.bufs[track][:n]
	m, err := pkt.MarshalTo(buf)
	if err != nil {
		s.complain("remarshal RTP", err)
		return
	}
	s.p.h.WriteRTP(track, buf[:m])
}

func (s *session) rtcp(track int, pkt rtcp.Packet) {
	<-s.ready
	if !s.live.Load() {
		return
	}
	// RTCP is a few packets per second: allocating here is fine
	b, err := pkt.Marshal()
	if err != nil {
		s.complain("remarshal RTCP", err)
		return
	}
	s.p.h.WriteRTCP(track, b)
}

// complain logs at most once per logEvery: a broken upstream produces an
// error per packet.
func (s *session) complain(msg string, err error) {
	s.logMu.Lock()
	now := time.Now()
	if !s.lastLog.IsZero() && now.Sub(s.lastLog) < logEvery {
		s.muted++
		s.logMu.Unlock()
		return
	}
	muted := s.muted
	s.lastLog, s.muted = now, 0
	s.logMu.Unlock()
	s.p.logger.Warn(msg, "err", err, "lost_total", s.lost.Load(), "suppressed", muted)
}
