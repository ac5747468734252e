package roq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshgw/meshgw/rtp"
)

// PullerConfig configures a Puller.
type PullerConfig struct {
	// URL is the upstream, roq://HOST:PORT/ROUTE (or quic://).
	URL  string
	TLS  *tls.Config
	Mode Mode
	// ReconnectMin and ReconnectMax bound the backoff between attempts (default 1 s and 30 s).
	ReconnectMin, ReconnectMax time.Duration
	// Tracks derives the tracks of the upstream's session description (rtsp/sdp.Parse at the
	// node): this package reads no SDP itself.
	Tracks func(sdp []byte) ([]rtp.Track, error)
	Logger *slog.Logger
}

// Puller is a RoQ source: it pulls a route from a RoQ server (another meshgw's quic: listener)
// and drives an rtp.SourceHandler with it, as the RTSP pull client does, reconnecting with
// backoff when the session ends.
type Puller struct {
	cfg PullerConfig
	h   rtp.SourceHandler
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewPuller makes a puller; Start runs it, Close ends it.
func NewPuller(cfg PullerConfig, h rtp.SourceHandler) *Puller {
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = time.Second
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = 30 * time.Second
	}
	cfg.ReconnectMax = max(cfg.ReconnectMax, cfg.ReconnectMin)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Puller{cfg: cfg, h: h, log: cfg.Logger.With("source", cfg.URL), ctx: ctx, cancel: cancel}
}

// Start runs the pull loop in a goroutine of its own.
func (p *Puller) Start() {
	p.once.Do(func() { p.wg.Go(p.loop) })
}

// Close stops the puller and waits for it; the handler's last OnDisconnect has returned.
func (p *Puller) Close() {
	p.cancel()
	p.wg.Wait()
}

func (p *Puller) loop() {
	wait := p.cfg.ReconnectMin
	for {
		start := time.Now()
		err := p.session()
		if p.ctx.Err() != nil {
			return
		}
		if time.Since(start) > 2*p.cfg.ReconnectMax {
			wait = p.cfg.ReconnectMin // it ran a while: start the backoff over
		}
		p.log.Warn("roq source down; retrying", "err", err, "in", wait)
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, p.cfg.ReconnectMax)
	}
}

// session runs one connection to the upstream from dial to its end.
func (p *Puller) session() error {
	c, err := Dial(p.ctx, p.cfg.URL, ClientConfig{TLS: p.cfg.TLS, Mode: p.cfg.Mode})
	if err != nil {
		return err
	}
	defer c.Close()
	tracks, err := p.cfg.Tracks(c.Answer.SDP)
	if err != nil {
		return fmt.Errorf("roq: upstream description: %w", err)
	}
	if len(tracks) != len(c.Answer.Flows) {
		return fmt.Errorf("roq: upstream describes %d tracks but gives flows for %d", len(tracks), len(c.Answer.Flows))
	}
	if err := p.h.OnReady(c.Answer.SDP, tracks); err != nil {
		return err
	}
	in := &pullInput{c: c, h: p.h, mu: make([]sync.Mutex, len(tracks))}
	err = c.Run(p.ctx, in)
	if err == nil {
		err = errors.New("roq: upstream ended the session")
	}
	if p.ctx.Err() != nil {
		err = rtp.ErrClosed
	}
	p.h.OnDisconnect(err)
	return err
}

// pullInput hands a session's packets to the handler, one track at a time: a track's packets
// may arrive on several streams at once, and the handler takes a track's calls in sequence.
type pullInput struct {
	c  *Client
	h  rtp.SourceHandler
	mu []sync.Mutex
}

func (in *pullInput) HandlePacket(flow uint64, pkt []byte) {
	ref, ok := in.c.Flow(flow)
	if !ok {
		return
	}
	m := &in.mu[ref.Track]
	m.Lock()
	if ref.RTCP {
		in.h.WriteRTCP(ref.Track, pkt)
	} else {
		in.h.WriteRTP(ref.Track, pkt)
	}
	m.Unlock()
}
