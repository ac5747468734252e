package hls

import (
	"slices"
	"strings"
	"time"
)

// clientWindow is how recently a client connection must have asked for a muxer's files to count
// in MuxerStats.Clients: a playing client reloads its playlist at least every target duration.
const clientWindow = 10 * time.Second

// maxClients bounds the client addresses a muxer remembers between prunes.
const maxClients = 4096

// MuxerStats are one route muxer's counters since it started.
type MuxerStats struct {
	Route   string
	Variant string
	Since   time.Time
	// Tracks is how many of the route's tracks the muxer carries.
	Tracks int
	// Requests is every request for the muxer's files; Playlists, Inits, Segments and Parts count
	// the ones answered 200 by kind (index and media playlists, fMP4 initialization sections,
	// whole segments, Low-Latency HLS parts).
	Requests, Playlists, Inits, Segments, Parts uint64
	// BytesSent is the response bytes written.
	BytesSent uint64
	// PacketsIn is the RTP packets taken from the route; Dropped those lost because the
	// muxer's queue was full.
	PacketsIn, Dropped uint64
	// Errors counts depacketizing and muxing errors and responses answered 5xx.
	Errors uint64
	// Warnings counts gohlslib's warnings that a segment or part outgrew the announced target
	// duration (a keyframe interval that does not fit hls.segment_duration).
	Warnings uint64
	// Clients is the distinct client connections (remote address and port) that asked for a
	// file in the last 10 s: about the viewers, as a player keeps one connection.
	Clients int
}

// Stats are the server's counters: totals since it started (for monotonic metrics) and each
// running muxer's own.
type Stats struct {
	// Requests is every HTTP request; Refused those answered 401 or 403 by the access rules.
	Requests, Refused uint64
	// BytesSent is the HLS response bytes written by every muxer, also the stopped ones.
	BytesSent uint64
	// MuxersStarted and MuxerStartErrors count muxer starts and refused or failed ones.
	MuxersStarted, MuxerStartErrors uint64
	// Segments, Parts and Errors are the running and stopped muxers' counters added up.
	Segments, Parts, Errors uint64
	// Muxers are the running muxers, by route.
	Muxers []MuxerStats
}

// Stats reports the server's counters and each running muxer's. A metrics collector may call it
// at any time from any goroutine.
func (s *Server) Stats() Stats {
	st := Stats{
		Requests: s.requests.Load(), Refused: s.refused.Load(), BytesSent: s.bytes.Load(),
		MuxersStarted: s.started.Load(), MuxerStartErrors: s.startErrors.Load(),
	}
	s.mu.Lock()
	st.Segments, st.Parts, st.Errors = s.done.segments, s.done.parts, s.done.errs
	ms := make([]*muxer, 0, len(s.muxers))
	for _, m := range s.muxers {
		ms = append(ms, m)
	}
	stopping := make([]*muxer, 0, len(s.stopping))
	for m := range s.stopping {
		stopping = append(stopping, m)
	}
	s.mu.Unlock()
	// a stopping muxer's counters still count toward the totals, so they never dip
	for _, m := range stopping {
		st.Segments += m.segments.Load()
		st.Parts += m.parts.Load()
		st.Errors += m.errs.Load()
	}
	for _, m := range ms {
		select {
		case <-m.ready:
		default:
			continue // still starting
		}
		if m.err != nil {
			continue
		}
		x := m.stats()
		st.Segments += x.Segments
		st.Parts += x.Parts
		st.Errors += x.Errors
		st.Muxers = append(st.Muxers, x)
	}
	slices.SortFunc(st.Muxers, func(a, b MuxerStats) int { return strings.Compare(a.Route, b.Route) })
	return st
}

func (m *muxer) stats() MuxerStats {
	now := time.Now().UnixNano()
	m.clientsMu.Lock()
	m.pruneClientsLocked(now)
	clients := len(m.clients)
	m.clientsMu.Unlock()
	return MuxerStats{
		Route: m.path, Variant: m.variant, Since: m.since, Tracks: len(m.tracks),
		Requests: m.requests.Load(), Playlists: m.playlists.Load(), Inits: m.inits.Load(),
		Segments: m.segments.Load(), Parts: m.parts.Load(), BytesSent: m.bytes.Load(),
		PacketsIn: m.q.In(), Dropped: m.q.Dropped(), Errors: m.errs.Load(), Warnings: m.warnings.Load(),
		Clients: clients,
	}
}

func (m *muxer) pruneClientsLocked(now int64) {
	for k, t := range m.clients {
		if now-t > int64(clientWindow) {
			delete(m.clients, k)
		}
	}
}

// totals are the counters of stopped muxers.
type totals struct{ segments, parts, errs uint64 }

// retire adds a stopped muxer's counters to the server's totals.
func (s *Server) retire(m *muxer) {
	s.mu.Lock()
	delete(s.stopping, m)
	s.done.segments += m.segments.Load()
	s.done.parts += m.parts.Load()
	s.done.errs += m.errs.Load()
	s.mu.Unlock()
}
