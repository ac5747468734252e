package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/meshgw/meshgw/gateway/api"
	"github.com/meshgw/meshgw/gateway/identity"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
)

const (
	defaultRetryMin = 100 * time.Millisecond
	defaultRetryMax = 2 * time.Second
	// defaultControlTimeout is how long a control that did not say its NodeTimeout may stay
	// silent before the agent gives the stream up.
	defaultControlTimeout = 3 * time.Second
	// welcomeTimeout bounds the wait for the control's answer to Hello.
	welcomeTimeout = 10 * time.Second
	statsInterval  = time.Second
)

// AgentConfig configures a node's end of the API.
type AgentConfig struct {
	// Control is the control's host:port.
	Control string
	// TLS is identity.ClientTLS(src, identity.AuthorizeControl(td)). Nil is refused.
	TLS *tls.Config
	// Node is the local data plane the control steers.
	Node Target
	// Hello is the node's name, data address, ports, client networks and capabilities. BootID
	// is generated when empty; Flows and Sources are filled on each attach.
	Hello Hello
	// RetryMin and RetryMax bound the redial backoff (defaults 100ms and 2s).
	RetryMin, RetryMax time.Duration
	// Logger: nil discards.
	Logger *slog.Logger
}

// Agent is a node's end of the API: it attaches to the control, reports what the node holds,
// applies the control's commands in order and reports source events and stats. Losing the
// control never touches the node's flows.
type Agent struct {
	cfg    AgentConfig
	log    *slog.Logger
	closed chan struct{}
	once   sync.Once
	// frozen is a test hook: once closed, the agent stops reading and writing its stream
	// without closing it, like a hung process.
	frozen chan struct{}

	mu sync.Mutex
	// sources is the last state of each stream, kept while detached for the next Hello.
	sources map[string]SourceState
	// attached says whether events are queued for the current stream.
	attached bool
	// welcomed is when the control accepted the current stream, zero while detached.
	welcomed time.Time
	queue    []*api.SourceEvent
	evSig    chan struct{}
}

// NewAgent checks cfg and builds the agent; Run attaches it.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.TLS == nil {
		return nil, errors.New("cluster: agent: no TLS config (the control↔node API is never used in plaintext)")
	}
	if cfg.Node == nil {
		return nil, errors.New("cluster: agent: no node")
	}
	if cfg.Control == "" {
		return nil, errors.New("cluster: agent: no control address")
	}
	if err := identity.ValidateNodeName(cfg.Hello.Name); err != nil {
		return nil, fmt.Errorf("cluster: agent: %w", err)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = defaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(defaultRetryMax, cfg.RetryMin)
	}
	if cfg.Hello.BootID == "" {
		cfg.Hello.BootID = newBootID()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{
		cfg: cfg, log: cfg.Logger.With("component", "cluster-agent", "control", cfg.Control),
		closed: make(chan struct{}), frozen: make(chan struct{}),
		sources: map[string]SourceState{}, evSig: make(chan struct{}, 1),
	}, nil
}

// AttachedSince is when the control accepted the node's current attach; ok is false while the
// node is not attached.
func (a *Agent) AttachedSince() (since time.Time, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.welcomed, !a.welcomed.IsZero()
}

// BootID is this agent's boot ID, random per process start unless configured.
func (a *Agent) BootID() string { return a.cfg.Hello.BootID }

// Events returns the node.Events to give the local node (node.LocalConfig.Events). Its methods
// never block: node.Local may call them from inside Apply, which the agent itself is running.
func (a *Agent) Events() node.Events { return agentEvents{a} }

type agentEvents struct{ a *Agent }

func (e agentEvents) SourceReady(stream string, sdp []byte, tracks []rtp.Track, replaced bool) {
	e.a.event(SourceState{Stream: stream, SDP: sdp, Tracks: append([]rtp.Track(nil), tracks...), Up: true}, replaced)
}

func (e agentEvents) SourceDown(stream string, err error) {
	msg := "source down"
	if err != nil {
		msg = err.Error()
	}
	e.a.event(SourceState{Stream: stream, Err: msg}, false)
}

// event records a stream's state and, while attached, queues it for the sender.
func (a *Agent) event(st SourceState, replaced bool) {
	a.mu.Lock()
	if st.Up || a.sources[st.Stream].Stream == "" {
		a.sources[st.Stream] = st
	} else {
		// a source that went down keeps its description for the next Hello
		prev := a.sources[st.Stream]
		prev.Up, prev.Err = false, st.Err
		a.sources[st.Stream] = prev
	}
	if a.attached {
		a.queue = append(a.queue, &api.SourceEvent{
			Stream: st.Stream, Ready: st.Up, Sdp: st.SDP, Tracks: tracksToProto(st.Tracks),
			Replaced: replaced, Error: wireText(st.Err),
		})
	}
	a.mu.Unlock()
	select {
	case a.evSig <- struct{}{}:
	default:
	}
}

// Run attaches to the control and serves it, attaching again after any loss with backoff, until
// ctx ends (it returns ctx's error) or Close (it returns nil).
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-a.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer wg.Wait()
	defer cancel()
	wait := a.cfg.RetryMin
	for {
		attached, err := a.session(ctx)
		select {
		case <-a.closed:
			return nil
		default:
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attached {
			wait = a.cfg.RetryMin
			a.log.Warn("detached from control; flows keep running", "err", err)
		} else {
			a.log.Warn("cannot attach to control", "err", err, "retry_in", wait)
		}
		// jitter keeps a fleet of nodes from redialling a restarted control in lockstep
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			select {
			case <-a.closed:
				return nil
			default:
			}
			return ctx.Err()
		}
		wait = min(wait*2, a.cfg.RetryMax)
	}
}

// Close stops Run. The node's flows are not touched.
func (a *Agent) Close() error {
	a.once.Do(func() { close(a.closed) })
	return nil
}

// freeze is the test hook behind frozen.
func (a *Agent) freeze() { close(a.frozen) }

func (a *Agent) isFrozen() bool {
	select {
	case <-a.frozen:
		return true
	default:
		return false
	}
}

// hello builds the registration for a new stream and starts queueing events for it; the
// snapshot and the queue start together so no event is lost or reported twice.
func (a *Agent) hello() *api.Hello {
	h := a.cfg.Hello
	h.Flows = a.cfg.Node.Flows()
	sourced := map[string]bool{}
	for _, f := range h.Flows {
		if strings.HasPrefix(string(f.Kind()), "source.") {
			sourced[f.Stream] = true
		}
	}
	a.mu.Lock()
	for id, st := range a.sources {
		// a source deleted since its last event reports nothing any more
		if !sourced[id] {
			delete(a.sources, id)
			continue
		}
		h.Sources = append(h.Sources, st)
	}
	a.attached = true
	a.queue = nil
	a.mu.Unlock()
	sort.Slice(h.Sources, func(i, j int) bool { return h.Sources[i].Stream < h.Sources[j].Stream })
	return helloToProto(h)
}

func (a *Agent) detach() {
	a.mu.Lock()
	a.attached = false
	a.welcomed = time.Time{}
	a.queue = nil
	a.mu.Unlock()
}

// session is one attach: dial, Hello, Welcome, then serve until the stream fails. attached says
// whether the control accepted the node.
func (a *Agent) session(ctx context.Context) (attached bool, err error) {
	conn, err := grpc.NewClient(a.cfg.Control,
		grpc.WithTransportCredentials(credentials.NewTLS(a.cfg.TLS)),
		// the transport's own pings catch a half-open TCP connection the application pings
		// would also catch, but without relying on the control to send them
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: a.cfg.RetryMin, Multiplier: 1.6, Jitter: 0.2, MaxDelay: a.cfg.RetryMax},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", a.cfg.Control, err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := api.NewControlClient(conn).Attach(sctx)
	if err != nil {
		return false, fmt.Errorf("attach: %w", err)
	}
	hello := a.hello()
	defer a.detach()
	if err := stream.Send(&api.NodeMessage{Msg: &api.NodeMessage_Hello{Hello: hello}}); err != nil {
		return false, fmt.Errorf("send hello: %w", a.streamErr(stream, err))
	}
	t := time.AfterFunc(welcomeTimeout, cancel)
	m, err := stream.Recv()
	t.Stop()
	if err != nil {
		return false, fmt.Errorf("waiting for welcome: %w", err)
	}
	w := m.GetWelcome()
	if w == nil || !w.Accepted {
		return false, fmt.Errorf("control did not welcome the node (got %T)", m.Msg)
	}
	timeout := time.Duration(w.NodeTimeoutNanos)
	if timeout <= 0 {
		timeout = defaultControlTimeout
	}
	a.mu.Lock()
	a.welcomed = time.Now()
	a.mu.Unlock()
	a.log.Info("attached to control", "control_boot_id", w.BootId, "flows", len(hello.Flows), "sources", len(hello.Sources))

	s := &agentSession{
		a: a, stream: stream, ctx: sctx, cancel: cancel, timeout: timeout,
		out: make(chan *api.NodeMessage, outQueue), cmdSig: make(chan struct{}, 1),
	}
	s.touch()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.send() }()
	go func() { defer wg.Done(); s.work() }()
	go func() { defer wg.Done(); s.watch() }()
	err = s.recv()
	cancel()
	wg.Wait()
	return true, err
}

// streamErr prefers the status the server ended the stream with over a bare send error (EOF).
func (a *Agent) streamErr(stream grpc.BidiStreamingClient[api.NodeMessage, api.ControlMessage], err error) error {
	if _, rerr := stream.Recv(); rerr != nil {
		return rerr
	}
	return err
}

// agentSession is one accepted stream on the node.
type agentSession struct {
	a       *Agent
	stream  grpc.BidiStreamingClient[api.NodeMessage, api.ControlMessage]
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration

	out chan *api.NodeMessage

	mu       sync.Mutex
	lastSeen time.Time
	cmds     []*api.Command
	cmdSig   chan struct{}
}

func (s *agentSession) touch() {
	s.mu.Lock()
	s.lastSeen = time.Now()
	s.mu.Unlock()
}

// hang blocks a frozen agent's goroutine until the session ends.
func (s *agentSession) hang() { <-s.ctx.Done() }

// recv reads the control's messages. Commands go to the worker so that a slow Apply never delays
// a Pong.
func (s *agentSession) recv() error {
	for {
		m, err := s.stream.Recv()
		if s.a.isFrozen() {
			s.hang()
			return errors.New("frozen (test)")
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		s.touch()
		switch msg := m.Msg.(type) {
		case *api.ControlMessage_Ping:
			s.put(&api.NodeMessage{Msg: &api.NodeMessage_Pong{Pong: &api.Pong{Nonce: msg.Ping.Nonce}}})
		case *api.ControlMessage_Command:
			s.mu.Lock()
			s.cmds = append(s.cmds, msg.Command)
			s.mu.Unlock()
			select {
			case s.cmdSig <- struct{}{}:
			default:
			}
		case *api.ControlMessage_Welcome:
			s.a.log.Warn("second welcome on one stream ignored")
		default:
			// a newer control's message; it still proves the control alive
		}
	}
}

// put queues a message for the sender unless the session ended.
func (s *agentSession) put(m *api.NodeMessage) {
	select {
	case s.out <- m:
	case <-s.ctx.Done():
	}
}

// send is the only writer of the stream: acks and pongs, source events and the stats pushed every
// second.
func (s *agentSession) send() {
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	for {
		var m *api.NodeMessage
		select {
		case <-s.ctx.Done():
			return
		case m = <-s.out:
		case <-s.a.evSig:
		case <-tick.C:
			m = s.stats()
		}
		// Source events go first: one raised inside an Apply then reaches the control before
		// that Apply's ack, as it would with a node in the control's process.
		s.a.mu.Lock()
		q := s.a.queue
		s.a.queue = nil
		s.a.mu.Unlock()
		for _, ev := range q {
			if !s.write(&api.NodeMessage{Msg: &api.NodeMessage_SourceEvent{SourceEvent: ev}}) {
				return
			}
		}
		if m != nil && !s.write(m) {
			return
		}
	}
}

// write sends one message; false ends the sender.
func (s *agentSession) write(m *api.NodeMessage) bool {
	if s.a.isFrozen() {
		s.hang()
		return false
	}
	if err := s.stream.Send(m); err != nil {
		s.a.log.Debug("send failed", "err", err)
		s.cancel()
		return false
	}
	return true
}

// stats reports every flow of the node.
func (s *agentSession) stats() *api.NodeMessage {
	st := &api.Stats{}
	for _, f := range s.a.cfg.Node.Flows() {
		fs, err := s.a.cfg.Node.Stats(f.ID)
		if err != nil {
			continue // deleted since Flows
		}
		st.Flows = append(st.Flows, statsToProto(f.ID, fs))
	}
	return &api.NodeMessage{Msg: &api.NodeMessage_Stats{Stats: st}}
}

// work applies the commands in the order they arrived and acks each.
func (s *agentSession) work() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.cmdSig:
		}
		for {
			if s.a.isFrozen() {
				s.hang()
				return
			}
			s.mu.Lock()
			if len(s.cmds) == 0 {
				s.mu.Unlock()
				break
			}
			cmd := s.cmds[0]
			s.cmds = s.cmds[1:]
			s.mu.Unlock()
			if s.ctx.Err() != nil {
				// commands not applied before the stream failed are not acked; the control
				// counted them failed and learns the node's state from the next Hello
				return
			}
			s.put(&api.NodeMessage{Msg: &api.NodeMessage_Ack{Ack: s.a.apply(cmd)}})
		}
	}
}

// watch gives the stream up when the control fell silent: it pings every NodeTimeout/4, so
// silence for NodeTimeout is a control that is gone or a path that broke without a reset.
func (s *agentSession) watch() {
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if s.a.isFrozen() {
			s.hang()
			return
		}
		s.mu.Lock()
		idle := time.Since(s.lastSeen)
		s.mu.Unlock()
		if idle >= s.timeout {
			s.a.log.Warn("control silent; attaching again", "silent_for", idle.Round(time.Millisecond))
			s.cancel()
			return
		}
		t.Reset(s.timeout - idle)
	}
}

// apply carries one command out on the node. It runs with the agent's context, not the stream's:
// a control that goes away must not abort a half-applied flow.
func (a *Agent) apply(cmd *api.Command) *api.Ack {
	ctx := context.Background()
	ack := &api.Ack{Seq: cmd.Seq}
	var err error
	switch cmd.Op {
	case api.Op_APPLY:
		var f node.Flow
		if f, err = FlowFromProto(cmd.Flow); err != nil {
			err = &Error{Code: CodeInvalid, Msg: err.Error()}
			if cmd.Flow != nil {
				ack.FlowId = cmd.Flow.Id
			}
			break
		}
		ack.FlowId = f.ID
		var st node.FlowStatus
		if st, err = a.cfg.Node.Apply(ctx, f); err == nil {
			ack.Status = statusToProto(st)
		}
	case api.Op_DELETE:
		ack.FlowId = cmd.FlowId
		if cmd.FlowId == "" {
			err = &Error{Code: CodeInvalid, Msg: "delete without flow ID"}
			break
		}
		err = a.cfg.Node.Delete(ctx, cmd.FlowId)
	default:
		err = &Error{Code: CodeInvalid, Msg: fmt.Sprintf("unknown op %v", cmd.Op)}
	}
	if err != nil {
		ack.Code = api.Code(codeOf(err))
		ack.Message = wireText(err.Error())
		a.log.Info("command refused", "seq", cmd.Seq, "op", cmd.Op, "flow", ack.FlowId, "code", ack.Code, "err", err)
		return ack
	}
	ack.Ok = true
	return ack
}
