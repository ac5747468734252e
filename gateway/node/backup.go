package node

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtp/backup"
	"github.com/meshgw/meshgw/rtp/keyframe"
	"github.com/meshgw/meshgw/rtsp/demo"
	"github.com/meshgw/meshgw/rtsp/pull"
	meshsdp "github.com/meshgw/meshgw/rtsp/sdp"
)

// Backup modes of a source flow (Backup.Mode); the config's names.
const (
	BackupAuto   = backup.Auto
	BackupMerge  = backup.Merge
	BackupSwitch = backup.Switch
)

// DefaultBackupStall is the stall time of a flow whose BackupStall is 0.
const DefaultBackupStall = backup.DefaultStall

// BackupStats is what a source flow's selector reports (FlowStats.Backup).
type BackupStats = backup.Stats

// ingest is one source feeding a selector leg (an rtp.SourceHandler).
type ingest interface {
	Start()
	Close()
}

// newIngest builds the ingest of one leg of a backed-up source. Every ingest
// kind drives h, an rtp.SourceHandler; a new kind (the rtp:// receiver)
// plugs in here.
func (n *Local) newIngest(spec Spec, stream string, h rtp.SourceHandler) (ingest, error) {
	switch sp := spec.(type) {
	case PullSource:
		return pull.New(pull.Config{
			URL: sp.URL, Transport: sp.Transport, ReconnectMin: sp.ReconnectMin, ReconnectMax: sp.ReconnectMax,
			Logger: n.log.With("stream", stream),
		}, h), nil
	case DemoSource:
		clip, err := n.demoClip()
		if err != nil {
			return nil, fmt.Errorf("demo clip: %w", err)
		}
		// the player announces the clip to the leg as a session at Start
		return demo.NewPlayer(clip, h, n.log.With("stream", stream)), nil
	case RTPSource:
		cfg, err := rtpSourceConfig(sp)
		if err != nil {
			return nil, err
		}
		cfg.Pool = n.pool
		cfg.Logger = n.log.With("stream", stream, "source", sp.URL)
		return &rtpIngest{cfg: cfg, h: h}, nil
	}
	return nil, fmt.Errorf("%s cannot feed a backed-up stream", spec.Kind())
}

// rtpIngest puts an rtp:// receiver behind a selector leg. The receiver binds its sockets and
// starts reading when it is made, so it is made in Start, once the selector is ready for its
// packets; a bind error then reaches the leg as a disconnect (the selector switches to the other
// leg) and the log.
type rtpIngest struct {
	cfg rtp.RTPSourceConfig
	h   rtp.SourceHandler

	mu     sync.Mutex
	src    *rtp.RTPSource
	closed bool
}

func (r *rtpIngest) Start() {
	src, err := rtp.NewRTPSource(r.cfg, r.h)
	if err != nil {
		r.cfg.Logger.Error("rtp source of a backed-up stream did not start", "err", err)
		r.h.OnDisconnect(err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		src.Close()
		return
	}
	r.src = src
}

func (r *rtpIngest) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.src != nil {
		r.src.Close()
	}
}

// validateBackup checks the backup of a source flow (part of Validate).
func validateBackup(id, stream string, b *Backup) error {
	if b == nil {
		return nil
	}
	switch b.Mode {
	case "", BackupAuto, BackupMerge, BackupSwitch:
	default:
		return fmt.Errorf("flow %s: backup mode %q, want auto, merge or switch", id, b.Mode)
	}
	if b.Stall < 0 {
		return fmt.Errorf("flow %s: negative backup stall", id)
	}
	if b.Source == nil {
		return fmt.Errorf("flow %s: backup without a source", id)
	}
	if bb, ok := b.Source.(backedUp); ok && bb.backup() != nil {
		return fmt.Errorf("flow %s: a backup has no backup of its own", id)
	}
	switch b.Source.(type) {
	case PullSource, DemoSource:
	default:
		return fmt.Errorf("flow %s: backup of kind %s; want %s or %s", id, b.Source.Kind(), SourcePull, SourceDemo)
	}
	if err := (Flow{ID: id + "/backup", Stream: stream, Spec: b.Source}).Validate(); err != nil {
		return fmt.Errorf("flow %s: backup: %w", id, err)
	}
	return nil
}

// selector runs a source flow with a backup: it wires the two ingests to the
// stream. The per-packet choice between them is the backup.Selector's
// (rtp/backup); the node lays the stream's hubs out when a leg announces its
// tracks, and reports the legs' state.
type selector struct {
	n      *Local
	s      *nodeStream
	f      *flow
	log    *slog.Logger
	pacing float64

	core    *backup.Selector
	ingests [2]ingest
}

// start builds the selector and both ingests; what it returns runs them.
func (sel *selector) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		f := fl.spec
		b := f.Spec.(backedUp).backup()
		sel.n, sel.s, sel.f, sel.log = n, fl.stream, fl, n.log.With("stream", f.Stream, "flow", f.ID)
		sel.pacing = f.Spec.(continuer).hubs().Pacing
		sel.core = backup.New(backup.Config{
			Mode: b.Mode, Stall: b.Stall,
			Hubs: &fl.stream.live, Forwarded: &fl.pkts, Logger: sel.log,
			Ready: sel.ready, Down: sel.down,
		})
		for i, spec := range []Spec{f.Spec, b.Source} {
			in, err := n.newIngest(spec, f.Stream, sel.core.Leg(i))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", backup.LegName(i), err)
			}
			sel.ingests[i] = in
		}
		return sel.run, nil
	})
}

func (sel *selector) run() {
	sel.core.Start()
	for _, in := range sel.ingests {
		in.Start()
	}
}

func (sel *selector) update(_ *Local, fl *flow, f Flow) error {
	keepSpec(fl, f)
	return nil
}

// stats: Packets counts what the selector put into the hubs.
func (sel *selector) stats(_ *Local, fl *flow) FlowStats {
	st := fl.counts()
	st.Backup = sel.core.Stats()
	return st
}

// stop stops both ingests (which may call back into the node: no lock
// held), then the selector's merge driver, then the hubs.
func (sel *selector) stop(n *Local, fl *flow) func() {
	return closeHubs(n.stopSourceLocked(fl), func() {
		for _, in := range sel.ingests {
			in.Close()
		}
		sel.core.Close()
	})
}

// codecsFor classifies the tracks of a leg from its description.
func codecsFor(sdp []byte, n int) []keyframe.Codec {
	names := meshsdp.TrackCodecs(sdp)
	out := make([]keyframe.Codec, n)
	for i := range out {
		if i < len(names) {
			out[i] = keyframe.CodecOf(names[i])
		}
	}
	return out
}

// ready is a leg's OnReady: the first leg up lays the stream out, the
// primary's layout wins, and a leg that does not fit is refused.
func (sel *selector) ready(leg int, sdp []byte, tracks []rtp.Track) error {
	n, s := sel.n, sel.s
	codecs := codecsFor(sdp, len(tracks))
	n.mu.Lock()
	if n.flows[sel.f.spec.ID] != sel.f {
		n.mu.Unlock()
		return errors.New("flow deleted")
	}
	var (
		report, replaced bool
		other            = 1 - leg
	)
	switch {
	case s.hubs == nil || (leg == backup.LegPrimary && !backup.Compatible(s.tracks, tracks)):
		// the first leg up lays the stream out; the primary's layout wins
		replaced = n.setHubsLocked(s, tracks, sel.pacing, nil)
		sel.core.SetTracks(tracks, codecs)
		report = true
		if sel.core.Leg(other).Mismatch() {
			// the other leg's layout was the old one
			sel.log.Warn("backup: the "+backup.LegName(other)+"'s tracks no longer match the stream's; its packets are dropped until it reconnects",
				"stream_tracks", len(tracks))
		}
	case !backup.Compatible(s.tracks, tracks):
		first := sel.core.Refused(leg)
		n.mu.Unlock()
		err := fmt.Errorf("backup: the %s's tracks %v do not match the stream's %v (need the same number, media kinds and clock rates)",
			backup.LegName(leg), tracks, s.tracks)
		if first {
			sel.log.Error("backup: refusing a leg", "err", err)
		}
		return err
	default:
		report = leg == backup.LegPrimary && sameLayout(s.tracks, tracks)
		sel.core.NewSession(leg)
	}
	sel.core.Leg(leg).Ready(codecs)
	n.mu.Unlock()
	sel.f.last.Store(time.Now().UnixNano())
	if report && n.events != nil {
		n.events.SourceReady(s.id, sdp, tracks, replaced)
	}
	return nil
}

// down is a leg's OnDisconnect, after the selector took the leg for stalled.
func (sel *selector) down(leg int, err error) {
	if errors.Is(err, pull.ErrClosed) || errors.Is(err, rtp.ErrClosed) {
		return // the flow is being deleted
	}
	other := 1 - leg
	if sel.core.Leg(other).Up() {
		sel.log.Warn("backup: "+backup.LegName(leg)+" disconnected; the "+backup.LegName(other)+" carries the stream", "err", err)
		return
	}
	if n := sel.n; n.events != nil {
		n.events.SourceDown(sel.s.id, fmt.Errorf("%s and %s down: %w", backup.LegName(leg), backup.LegName(other), err))
	}
}
