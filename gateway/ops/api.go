package ops

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is what Kicker.Kick wraps when no session has the ID (answered 404).
var ErrNotFound = errors.New("not found")

// OpenAPI is the OpenAPI 3 document of the REST API (openapi.yaml), served at
// /v1/openapi.yaml; api_test checks every answer against it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// api serves /v1/...: JSON views of Source's Snapshot and the two actions. It owns the bitrate
// sampler, so it lives as long as its Server.
type api struct {
	s     *Server
	rates rateSampler
}

// Kicker is implemented by a Source that can end sessions (a gateway's front door; a node has
// none). Kick ends the session with this Session.ID and closes its connection; the error wraps
// ErrNotFound when there is none.
type Kicker interface {
	Kick(id string) error
}

// mountAPI mounts the REST API and the status page (page.go). Paths are registered without a
// method so that a wrong method gets this API's JSON 405, not the mux's plain-text one; GET
// paths need the read role, POST paths admin. Every error answer, the authenticator's 401 and
// 403 included, is JSON.
func (s *Server) mountAPI() {
	a := &api{s: s}
	get := func(path string, h func(*http.Request) (any, error)) {
		s.handleJSON(path, readRole, a.only(http.MethodGet, h))
	}
	get("/v1/info", a.info)
	get("/v1/routes", a.routes)
	get("/v1/streams", a.streams)
	get("/v1/sessions", a.sessions)
	get("/v1/nodes", a.nodes)
	get("/v1/relays", a.relays)
	s.handleJSON("/v1/sessions/{id}/kick", adminRole, a.only(http.MethodPost, a.kick))
	s.handleJSON("POST /v1/reload", adminRole, http.HandlerFunc(s.serveReload))
	s.handleJSON("/v1/reload", readRole, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "use POST")
	}))
	s.handleJSON("/v1/openapi.yaml", readRole, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(OpenAPI)
	}))
	s.handleJSON("/v1/", readRole, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API path: "+r.URL.Path)
	}))
	s.mountPage()
}

// handleJSON is handle with the authenticator's and h's plain-text errors answered as JSON.
func (s *Server) handleJSON(pattern string, need role, h http.Handler) {
	s.mux.Handle(pattern, jsonErrors(s.auth.require(need, h)))
}

// httpError is an error with the status it is answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// only answers method with h and everything else with 405.
func (a *api) only(method string, h func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "use "+method)
			return
		}
		v, err := h(r)
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				writeError(w, he.status, he.msg)
				return
			}
			a.s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode the answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	if msg == "" {
		msg = http.StatusText(status)
	}
	writeJSON(w, status, apiError{Error: msg})
}

// jsonErrors turns the plain-text error answers of the middleware in front of h (401 and 403
// from the authenticator) into the API's JSON errors; answers already in JSON pass untouched.
func jsonErrors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&errorJSONWriter{ResponseWriter: w}, r)
	})
}

// errorJSONWriter rewrites a text/plain error (status >= 400) as {"error": text}.
type errorJSONWriter struct {
	http.ResponseWriter
	status  int
	rewrite bool
	buf     bytes.Buffer
}

func (e *errorJSONWriter) WriteHeader(status int) {
	if e.status != 0 {
		return
	}
	e.status = status
	if status >= 400 && strings.HasPrefix(e.Header().Get("Content-Type"), "text/plain") {
		e.rewrite = true
		return // written in Write, once the text is known
	}
	e.ResponseWriter.WriteHeader(status)
}

func (e *errorJSONWriter) Write(b []byte) (int, error) {
	if e.status == 0 {
		e.WriteHeader(http.StatusOK)
	}
	if !e.rewrite {
		return e.ResponseWriter.Write(b)
	}
	e.buf.Write(b)
	// http.Error writes its text in one call ending in a newline.
	if bytes.HasSuffix(b, []byte("\n")) {
		e.Header().Del("X-Content-Type-Options")
		writeError(e.ResponseWriter, e.status, strings.TrimSpace(e.buf.String()))
		e.rewrite = false
		e.status = -1
	}
	return len(b), nil
}

// ---- views ------------------------------------------------------------------------------------

// infoJSON is /v1/info.
type infoJSON struct {
	Version   string     `json:"version"`
	Revision  string     `json:"revision"`
	Modified  bool       `json:"modified"`
	Role      string     `json:"role"`
	Node      string     `json:"node"`
	Started   *time.Time `json:"started"`
	GoVersion string     `json:"go_version"`
}

func (a *api) info(*http.Request) (any, error) {
	snap := a.s.cfg.Source.Snapshot()
	b := Build()
	v := infoJSON{Version: b.Version, Revision: b.Revision, Modified: b.Modified, Role: snap.Role, Node: snap.Node,
		Started: timePtr(snap.Started), GoVersion: b.GoVersion}
	if v.GoVersion == "" {
		v.GoVersion = runtime.Version()
	}
	return v, nil
}

type routeJSON struct {
	Name             string       `json:"name"`
	Source           string       `json:"source"`
	Regex            bool         `json:"regex"`
	OnDemand         bool         `json:"on_demand"`
	State            string       `json:"state"`
	Streams          []string     `json:"streams"`
	Readers          int          `json:"readers"`
	Publishers       int          `json:"publishers"`
	In               countersJSON `json:"in"`
	Out              countersJSON `json:"out"`
	SourceRestarts   uint64       `json:"source_restarts"`
	FECRecovered     uint64       `json:"fec_recovered"`
	FECUnrecoverable uint64       `json:"fec_unrecoverable"`
}

// stateRank orders stream states for a route's summary: the best of its streams wins.
var stateRank = map[string]int{"idle": 0, "down": 1, "starting": 2, "live": 3}

func (a *api) routes(*http.Request) (any, error) {
	snap := a.s.cfg.Source.Snapshot()
	out := make([]routeJSON, 0, len(snap.Routes))
	for _, r := range snap.Routes {
		v := routeJSON{Name: r.Name, Source: redact(r.Source), Regex: r.Regex, OnDemand: r.OnDemand, State: "idle", Streams: []string{},
			In: counters(r.In), Out: counters(r.Out), SourceRestarts: r.SourceRestarts,
			FECRecovered: r.FECRecovered, FECUnrecoverable: r.FECUnrecoverable}
		for _, st := range snap.Streams {
			if st.Route != r.Name {
				continue
			}
			v.Streams = append(v.Streams, st.Name)
			if stateRank[st.State] > stateRank[v.State] {
				v.State = st.State
			}
			for _, n := range st.Readers {
				v.Readers += n
			}
			v.Publishers += st.Publishers
		}
		out = append(out, v)
	}
	return map[string]any{"routes": out}, nil
}

type countersJSON struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Dropped uint64 `json:"dropped"`
	Errors  uint64 `json:"errors"`
}

func counters(c Counters) countersJSON {
	return countersJSON(c)
}

type trackJSON struct {
	Index       int    `json:"index"`
	Media       string `json:"media"`
	Codec       string `json:"codec"`
	PayloadType int    `json:"payload_type"`
	ClockRate   int    `json:"clock_rate"`
}

type streamJSON struct {
	Name             string         `json:"name"`
	Route            string         `json:"route"`
	Source           string         `json:"source"`
	IngestNode       string         `json:"ingest_node"`
	State            string         `json:"state"`
	Tracks           []trackJSON    `json:"tracks"`
	Readers          map[string]int `json:"readers"`
	Publishers       int            `json:"publishers"`
	Outputs          int            `json:"outputs"`
	In               countersJSON   `json:"in"`
	Out              countersJSON   `json:"out"`
	FECRecovered     uint64         `json:"fec_recovered"`
	FECUnrecoverable uint64         `json:"fec_unrecoverable"`
	BitrateIn        *float64       `json:"bitrate_in_bps"`
	BitrateOut       *float64       `json:"bitrate_out_bps"`
	PacketsIn        *float64       `json:"packet_rate_in"`
	PacketsOut       *float64       `json:"packet_rate_out"`
}

func (a *api) streams(r *http.Request) (any, error) {
	snap, prev, err := a.rates.pair(r.Context(), a.s.cfg.Source)
	if err != nil {
		return nil, err
	}
	out := make([]streamJSON, 0, len(snap.Streams))
	for _, st := range snap.Streams {
		v := streamJSON{Name: st.Name, Route: st.Route, Source: redact(st.Source), IngestNode: st.IngestNode, State: st.State,
			Tracks: make([]trackJSON, 0, len(st.Tracks)), Readers: map[string]int{}, Publishers: st.Publishers,
			Outputs: st.Outputs, In: counters(st.In), Out: counters(st.Out),
			FECRecovered: st.FECRecovered, FECUnrecoverable: st.FECUnrecoverable}
		for _, t := range st.Tracks {
			v.Tracks = append(v.Tracks, trackJSON(t))
		}
		for k, n := range st.Readers {
			v.Readers[k] = n
		}
		if p, ok := prev.counts[st.Name]; ok {
			dt := snap.at.Sub(prev.at).Seconds()
			v.BitrateIn, v.BitrateOut = rate(p.In.Bytes, st.In.Bytes, 8, dt), rate(p.Out.Bytes, st.Out.Bytes, 8, dt)
			v.PacketsIn, v.PacketsOut = rate(p.In.Packets, st.In.Packets, 1, dt), rate(p.Out.Packets, st.Out.Packets, 1, dt)
		}
		out = append(out, v)
	}
	return map[string]any{"streams": out}, nil
}

// rate is the growth of a counter per second (times scale: 8 for bits from bytes) between two
// readings dt seconds apart; nil when the counter went back (a restarted flow), which says
// nothing about the rate.
func rate(before, after uint64, scale, dt float64) *float64 {
	if after < before || dt <= 0 {
		return nil
	}
	v := float64(after-before) * scale / dt
	return &v
}

type receptionJSON struct {
	FractionLost   float64  `json:"fraction_lost"`
	CumulativeLost int64    `json:"cumulative_lost"`
	Jitter         float64  `json:"jitter_seconds"`
	RTT            *float64 `json:"rtt_seconds"`
	Reports        uint64   `json:"reports"`
}

func reception(r *Reception) *receptionJSON {
	if r == nil {
		return nil
	}
	v := &receptionJSON{FractionLost: r.FractionLost, CumulativeLost: r.CumulativeLost, Jitter: r.Jitter, Reports: r.Reports}
	if r.RTT > 0 {
		s := r.RTT.Seconds()
		v.RTT = &s
	}
	return v
}

type sessionJSON struct {
	ID        string         `json:"id"`
	Kind      string         `json:"kind"`
	Route     string         `json:"route"`
	Transport string         `json:"transport"`
	Node      string         `json:"node"`
	Remote    string         `json:"remote"`
	User      string         `json:"user"`
	Started   *time.Time     `json:"started"`
	Counters  countersJSON   `json:"counters"`
	Reception *receptionJSON `json:"reception"`
}

func (a *api) sessions(*http.Request) (any, error) {
	snap := a.s.cfg.Source.Snapshot()
	out := make([]sessionJSON, 0, len(snap.Sessions))
	for _, s := range snap.Sessions {
		v := sessionJSON{ID: s.ID, Kind: s.Kind, Route: s.Route, Transport: s.Transport, Node: s.Node, User: s.User,
			Started: timePtr(s.Started), Counters: counters(s.Counters), Reception: reception(s.Reception)}
		if s.Remote.IsValid() {
			v.Remote = s.Remote.String()
		}
		out = append(out, v)
	}
	return map[string]any{"sessions": out}, nil
}

type nodeJSON struct {
	Name         string     `json:"name"`
	Local        bool       `json:"local"`
	Up           bool       `json:"up"`
	Data         string     `json:"data_address"`
	RTPPort      int        `json:"rtp_port"`
	LiveLive     string     `json:"live_live_address"`
	Networks     []string   `json:"networks"`
	Capabilities []string   `json:"capabilities"`
	Flows        int        `json:"flows"`
	AttachedAt   *time.Time `json:"attached_at"`
	LastReport   *time.Time `json:"last_report"`
}

func (a *api) nodes(*http.Request) (any, error) {
	snap := a.s.cfg.Source.Snapshot()
	out := make([]nodeJSON, 0, len(snap.Nodes))
	for _, n := range snap.Nodes {
		v := nodeJSON{Name: n.Name, Local: n.Local, Up: n.Up, RTPPort: n.RTPPort, Networks: []string{},
			Capabilities: append([]string{}, n.Capabilities...), Flows: n.Flows,
			AttachedAt: timePtr(n.AttachedAt), LastReport: timePtr(n.LastReport)}
		if n.Data.IsValid() {
			v.Data = n.Data.String()
		}
		if n.LiveLive.IsValid() {
			v.LiveLive = n.LiveLive.String()
		}
		for _, p := range n.Networks {
			v.Networks = append(v.Networks, p.String())
		}
		out = append(out, v)
	}
	return map[string]any{"nodes": out}, nil
}

type legJSON struct {
	Received   uint64 `json:"received"`
	First      uint64 `json:"first"`
	Duplicates uint64 `json:"duplicates"`
	Late       uint64 `json:"late"`
	Lost       uint64 `json:"lost"`
}

type relayJSON struct {
	Route           string   `json:"route"`
	From            string   `json:"from"`
	To              string   `json:"to"`
	Leg             string   `json:"leg"`
	Packets         uint64   `json:"packets"`
	LostBefore      *uint64  `json:"lost_before"`
	LostAfter       *uint64  `json:"lost_after"`
	NACKs           *uint64  `json:"nacks"`
	Retransmissions *uint64  `json:"retransmissions"`
	LossRatio       *float64 `json:"loss_ratio"`
	Legs            *legJSON `json:"legs"`
	Health          string   `json:"health"`
}

func (a *api) relays(*http.Request) (any, error) {
	snap := a.s.cfg.Source.Snapshot()
	up := map[string]bool{}
	for _, n := range snap.Nodes {
		up[n.Name] = n.Up
	}
	// A node the snapshot does not list (a node process answering about its own hops) is taken
	// as up: only the control knows when a node is down.
	nodeUp := func(name string) bool {
		u, ok := up[name]
		return u || !ok
	}
	out := make([]relayJSON, 0, len(snap.Relays))
	for _, r := range snap.Relays {
		v := relayJSON{Route: r.Route, From: r.From, To: r.To, Leg: r.Leg, Packets: r.Packets}
		if v.Leg == "" {
			v.Leg = "a"
		}
		if r.Repair {
			v.LostBefore, v.LostAfter, v.NACKs = &r.LostBefore, &r.LostAfter, &r.NACKs
		}
		if r.ResendsKnown {
			v.Retransmissions = &r.Retransmissions
		}
		if l := r.Legs; l != nil {
			v.Legs = &legJSON{Received: l.Received, First: l.First, Duplicates: l.Duplicates, Late: l.Late, Lost: l.Lost}
		}
		v.LossRatio = lossRatio(r)
		v.Health = relayHealth(r.Packets, v.LossRatio, nodeUp(r.From) && nodeUp(r.To))
		out = append(out, v)
	}
	return map[string]any{"relays": out}, nil
}

// lossRatio is the share of a hop's packets lost on the way, nil when the answering process
// does not know: from the NACK repairer's count before repair when the far end is local, else
// from a 2022-7 leg's own count of what it never delivered.
func lossRatio(r Relay) *float64 {
	var lost, got uint64
	switch {
	case r.Repair:
		lost, got = r.LostBefore, r.Packets
	case r.Legs != nil:
		lost, got = r.Legs.Lost, r.Legs.Received
	default:
		return nil
	}
	v := 0.0
	if lost+got > 0 {
		v = float64(lost) / float64(lost+got)
	}
	return &v
}

// Health thresholds of a relay hop's loss (since it started): under 0.5 % NACK repair keeps up
// with live video; from 5 % it no longer does.
const (
	degradedLoss = 0.005
	badLoss      = 0.05
)

// relayHealth rates a hop "good", "degraded", "bad" or "unknown" (no loss figure, or no packet
// yet). A hop touching a node that is down is bad whatever its counters say.
func relayHealth(packets uint64, loss *float64, nodesUp bool) string {
	switch {
	case !nodesUp:
		return "bad"
	case loss == nil || packets == 0:
		// Packets may flow, but nothing says how well: a green link would be a guess.
		return "unknown"
	case *loss >= badLoss:
		return "bad"
	case *loss >= degradedLoss:
		return "degraded"
	}
	return "good"
}

// ---- actions ----------------------------------------------------------------------------------

func (a *api) kick(r *http.Request) (any, error) {
	id := r.PathValue("id")
	k, ok := a.s.cfg.Source.(Kicker)
	if !ok {
		return nil, &httpError{http.StatusNotFound, "this process serves no sessions"}
	}
	if err := k.Kick(id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, &httpError{http.StatusNotFound, err.Error()}
		}
		return nil, err
	}
	a.s.log.Info("api: session kicked", "session", id, "by", principalName(r), "remote", r.RemoteAddr)
	return map[string]string{"kicked": id}, nil
}

func principalName(r *http.Request) string {
	if p, ok := PrincipalFrom(r.Context()); ok && p.User != "" {
		return p.User
	}
	return "(anonymous)"
}

// ---- helpers ----------------------------------------------------------------------------------

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// redact hides the password of a source URL ("rtsp://user:pass@cam/..." becomes
// "rtsp://user:xxxxx@cam/...").
func redact(source string) string {
	if !strings.Contains(source, "@") {
		return source
	}
	u, err := url.Parse(source)
	if err != nil || u.User == nil {
		return source
	}
	return u.Redacted()
}

// rateSampler keeps the counters of the last /v1/streams answer, so the next one computes
// bitrates over the time between them.
type rateSampler struct {
	mu   sync.Mutex
	last sample
}

// sample is every stream's counters at one moment.
type sample struct {
	at     time.Time
	counts map[string]struct{ In, Out Counters }
}

// Bitrates need two snapshots at least minWindow apart; one older than maxWindow is too stale
// to say what flows now.
const (
	minWindow = 250 * time.Millisecond
	maxWindow = 10 * time.Second
)

type snapshotAt struct {
	Snapshot
	at time.Time
}

func takeSample(src Source) (snapshotAt, sample) {
	snap := snapshotAt{Snapshot: src.Snapshot(), at: time.Now()}
	if !snap.Now.IsZero() {
		snap.at = snap.Now
	}
	smp := sample{at: snap.at, counts: make(map[string]struct{ In, Out Counters }, len(snap.Streams))}
	for _, st := range snap.Streams {
		smp.counts[st.Name] = struct{ In, Out Counters }{st.In, st.Out}
	}
	return snap, smp
}

// pair returns a snapshot now and an earlier sample to compute rates against: the last
// answer's when it is between minWindow and maxWindow old, else one taken minWindow ago.
func (r *rateSampler) pair(ctx context.Context, src Source) (snapshotAt, sample, error) {
	r.mu.Lock()
	prev := r.last
	r.mu.Unlock()
	if age := time.Since(prev.at); prev.counts == nil || age > maxWindow {
		_, prev = takeSample(src)
		t := time.NewTimer(minWindow)
		select {
		case <-ctx.Done():
			t.Stop()
			return snapshotAt{}, sample{}, fmt.Errorf("request ended: %w", ctx.Err())
		case <-t.C:
		}
	} else if age < minWindow {
		// A second poller right after the first: wait out the window rather than divide by
		// a few milliseconds.
		select {
		case <-ctx.Done():
			return snapshotAt{}, sample{}, fmt.Errorf("request ended: %w", ctx.Err())
		case <-time.After(minWindow - age):
		}
	}
	snap, now := takeSample(src)
	r.mu.Lock()
	if now.at.After(r.last.at) {
		r.last = now
	}
	r.mu.Unlock()
	return snap, prev, nil
}
