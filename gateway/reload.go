package gateway

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtsp"
)

// Reload applies a new, validated config to the running gateway without a restart (SIGHUP, a
// change of the file, the API's reload action). The new TLS pair is loaded first: one that does
// not load refuses the whole reload and the running config stays. Then auth users, permissions,
// allowed addresses and the rtsp limits change in place for new requests, and the routes are
// brought in step (Control.Reload): streams of unchanged routes are not touched. Keys that need
// a restart keep their running values and are named in a warning.
func (g *Gateway) Reload(ctx context.Context, cfg *config.Config) error {
	if cfg.Node.IsNodeOnly() {
		return errors.New("the new file configures a node (node.control is set); a control cannot become one")
	}
	if g.certs != nil && cfg.RTSPS.Enabled() {
		if err := g.certs.SetFiles(cfg.RTSPS.Cert, cfg.RTSPS.Key); err != nil {
			return err
		}
	}
	g.RTSP.SetAuth(authPolicy(cfg))
	g.RTSP.SetLimits(limitsOf(cfg))
	if keys := config.RestartKeys(g.Control.cfg, cfg); len(keys) > 0 {
		g.log.Warn("config reload: these keys changed but take effect only after a restart; their running values stay", "keys", keys)
	}
	d := g.Control.Reload(ctx, cfg)
	g.log.Info("config reloaded", "file", cfg.File, "routes", len(cfg.Routes), "added", d.Added, "removed", d.Removed,
		"changed", d.Changed, "unchanged", len(d.Unchanged))
	return nil
}

// Reload is a node's part of a config reload: a node's own file holds only keys of its process
// (name, addresses, control, identity), none of which it can take in place, so it names those
// that changed in a warning. (log_level is the command's to apply.)
func (p *NodeProcess) Reload(_ context.Context, cfg *config.Config) error {
	if !cfg.Node.IsNodeOnly() {
		return errors.New("the new file has no node.control; a node cannot become a control")
	}
	if keys := config.RestartKeys(p.cfg, cfg); len(keys) > 0 {
		p.log.Warn("config reload: these keys changed but take effect only after a restart; their running values stay", "keys", keys)
	}
	p.log.Info("config reloaded", "file", cfg.File)
	return nil
}

// Config is the config in force: the one the control started with, or the last one Reload
// applied. Keys that need a restart show their new values here, not their running ones.
func (c *Control) Config() *config.Config { return c.conf() }

// conf is the config in force (core.live).
func (co *core) conf() *config.Config { return co.live.Load() }

// routeOf is s's route, read under the control's lock (a reload may replace it).
func (co *core) routeOf(s *stream) config.Route {
	co.mu.Lock()
	defer co.mu.Unlock()
	return s.route
}

// Reload brings the streams in step with cfg's routes and returns how the route table changed.
// Per stream, by the route its path now matches:
//   - the same settings: nothing happens; its readers see no gap;
//   - another source, backup, transport, pacing or TLS trust, on the same ingest node: the node
//     swaps the source under the stream's hubs (node: replaceSourceLocked). When the new source
//     describes its media as the old one did, readers stay on their line and see the new
//     source; otherwise (another track layout, other codec parameters such as H.264 parameter
//     sets, which many sources send only in their description) their sessions end, and players
//     that come back get the new description (streams.ready, sameMedia);
//   - no route any more, a source that became or stopped being publisher, or another ingest node:
//     the stream ends: its readers' and publisher's sessions end (players see the end of the
//     stream), its outputs and source stop; the next request makes a stream of the new route;
//   - other keys (max_readers, allow_ips, srtp, on_demand timing, override_publisher) apply to
//     new requests; changed outputs are restarted.
//
// Always-on sources of new routes are started.
func (c *Control) Reload(ctx context.Context, cfg *config.Config) config.RouteDiff {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return config.RouteDiff{}
	}
	d := config.DiffRoutes(c.conf(), cfg)
	c.live.Store(cfg)
	all := c.streams.allLocked()
	c.mu.Unlock()
	for _, s := range all {
		c.reloadStream(ctx, s, cfg)
	}
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return d // the startup grace is not over: FinishAdoption starts them
	}
	for _, r := range cfg.Routes {
		if !alwaysOn(r) {
			continue
		}
		c.mu.Lock()
		s := c.streams.streamLocked(r.Name, r)
		err := c.streams.startSourceLocked(ctx, s)
		c.streams.ensureOutputs(s)
		c.mu.Unlock()
		if err != nil {
			c.log.Error("config reload: source not started", "route", r.Name, "err", err)
		}
	}
	return d
}

// reloadStream applies cfg to one stream (see Reload).
func (c *Control) reloadStream(ctx context.Context, s *stream, cfg *config.Config) {
	s.outMu.Lock()
	s.relayMu.Lock()
	c.mu.Lock()
	if !c.streams.currentLocked(s) {
		c.mu.Unlock()
		s.relayMu.Unlock()
		s.outMu.Unlock()
		return
	}
	old := s.route
	nr, ok := cfg.Match(s.path)
	var (
		end     *ending
		replace *node.Flow
		via     *member
		outs    []*reader
	)
	switch {
	case ok && config.RouteEqual(old, nr):
		s.route = nr // its lines may have moved
	case !ok || (old.Source == config.SourcePublisher) != (nr.Source == config.SourcePublisher) || old.Node != nr.Node:
		why := "route removed"
		if ok {
			why = "route changed in a way its stream cannot follow"
		}
		c.log.Info("config reload: ending the route's stream and sessions", "route", s.path, "why", why)
		end = c.endLocked(s)
	default:
		s.route = nr
		if !config.SourceEqual(old, nr) && nr.Source != config.SourcePublisher && s.sourceFlow != "" && s.ingest != nil {
			f, err := sourceFlowFor(s)
			if err != nil {
				c.log.Error("config reload: new source", "route", s.path, "err", err)
			} else {
				f.ID, f.Version = s.sourceFlow, uint64(time.Now().UnixNano())
				replace, via = &f, s.ingest
				s.swapping = true
			}
		}
		if !config.OutputsEqual(old, nr) {
			for i, rd := range s.outputs {
				outs = append(outs, rd)
				delete(s.outputs, i)
			}
		}
		if s.readers == 0 {
			c.streams.armIdleLocked(s) // it may have become on-demand
		}
		c.log.Info("config reload: route changed", "route", s.path, "source_replaced", replace != nil, "outputs_restarted", len(outs))
	}
	c.mu.Unlock()
	s.relayMu.Unlock()
	s.outMu.Unlock()
	for _, rd := range outs {
		rd.Close()
	}
	if end != nil {
		end.finish(ctx, c)
		return
	}
	if replace != nil {
		if _, err := via.n.Apply(ctx, *replace); err != nil {
			c.log.Error("config reload: replace source", "route", s.path, "node", via.name, "err", err)
		} else {
			c.log.Info("source replaced", "route", s.path, "kind", replace.Kind(), "node", via.name)
		}
	}
	if len(outs) > 0 {
		c.mu.Lock()
		c.streams.ensureOutputs(s)
		c.mu.Unlock()
	}
}

// sameMedia reports whether two session descriptions describe the same media: the same m=,
// a=rtpmap and a=fmtp lines in the same order. A reader set up with one can decode a source
// described by the other; otherwise (H.264 parameter sets that differ, most often carried only
// in the description) it cannot, and is ended to come back with the new description.
func sameMedia(a, b []byte) bool {
	pick := func(sdp []byte) []string {
		var out []string
		for _, l := range strings.Split(string(sdp), "\n") {
			l = strings.TrimRight(l, "\r")
			if strings.HasPrefix(l, "m=") || strings.HasPrefix(l, "a=rtpmap:") || strings.HasPrefix(l, "a=fmtp:") {
				out = append(out, l)
			}
		}
		return out
	}
	return slices.Equal(pick(a), pick(b))
}

// ending is what stops once a stream's locks are released: its publisher's session, its outputs
// and adopted readers (which have no session to end), and its source flow.
type ending struct {
	pub     *publication
	readers []*reader
	source  string
	ingest  *member
}

// endLocked takes s out of the table and ends its readers' sessions (their stream is gone, which
// the front door turns into the end of each session); finish does the rest without the locks. It
// holds s.outMu, s.relayMu and the control's lock.
func (c *Control) endLocked(s *stream) *ending {
	c.streams.forgetLocked(s)
	if s.idle != nil {
		s.idle.Stop()
		s.idle = nil
	}
	close(s.gone)
	s.gone = make(chan struct{})
	e := &ending{pub: s.publisher, source: s.sourceFlow, ingest: s.ingest}
	s.sourceFlow = ""
	for i, rd := range s.outputs {
		e.readers = append(e.readers, rd)
		delete(s.outputs, i)
	}
	for rd := range s.rdrs {
		if rd.adopted {
			e.readers = append(e.readers, rd)
		}
	}
	if s.group.IsValid() {
		c.streams.mcast.release(s.group)
		s.group = netip.Addr{}
	}
	return e
}

func (e *ending) finish(ctx context.Context, c *Control) {
	if e.pub != nil {
		e.pub.kick()
	}
	for _, rd := range e.readers {
		rd.Close()
	}
	if e.source != "" && e.ingest != nil && e.ingest.isAlive() {
		if err := e.ingest.n.Delete(ctx, e.source); err != nil && !errors.Is(err, node.ErrNotFound) {
			c.log.Error("config reload: stop source", "node", e.ingest.name, "flow", e.source, "err", err)
		}
	}
}

// limitsOf is the front door's limits from the rtsp: section.
func limitsOf(cfg *config.Config) rtsp.Limits {
	l := cfg.RTSP.Limits
	return rtsp.Limits{
		MaxSessions: l.MaxSessions, MaxSessionsPerRoute: l.MaxSessionsPerRoute,
		MaxSessionsPerAddress: l.MaxSessionsPerAddress, MaxUnauthConns: l.MaxUnauthenticated,
		MaxUnauthConnsPerAddress: l.MaxUnauthenticatedPerAddress, MaxHeaders: l.MaxRequestHeaders,
	}
}
