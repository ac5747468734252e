package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshgw/meshgw/gateway/api"
	"github.com/meshgw/meshgw/gateway/node"
)

// Remote is one attached node as the control sees it: a node.Node whose commands travel over the
// node's stream. A Remote lives as long as one attach; a node that attaches again is a new
// Remote (handed over in Handler.NodeUp), and the old one fails every command with ErrNodeDown.
type Remote struct {
	s      *Server
	name   string
	stream api.Control_AttachServer
	log    *slog.Logger
	// hello is set before the Remote is registered and never changed after.
	hello Hello

	out      chan *api.ControlMessage
	lastSeen atomic.Int64 // unix nanos of the last message from the node

	// for the operations view: when the stream came, the last Stats report (unix nanos), and
	// the commands answered with their summed round trip (nanoseconds)
	attached   time.Time
	lastReport atomic.Int64
	cmds       atomic.Uint64
	cmdNanos   atomic.Int64

	ready  chan struct{} // closed once registered: the receive loop may handle messages
	done   chan struct{} // closed when the stream is dead
	downed chan struct{} // closed once NodeDown returned (or when NodeUp never came)

	endOnce sync.Once
	endCh   chan struct{}
	endErr  error // set before endCh closes

	mu      sync.Mutex
	dead    bool
	downErr error
	seq     uint64
	pending map[uint64]chan *api.Ack
	stats   map[string]node.FlowStats
	events  []func() // source events for the handler goroutine, in arrival order
	evSig   chan struct{}
}

var _ node.Node = (*Remote)(nil)

func newRemote(s *Server, name string, stream api.Control_AttachServer) *Remote {
	return &Remote{
		s: s, name: name, stream: stream, log: s.log.With("node", name), attached: time.Now(),
		out:   make(chan *api.ControlMessage, outQueue),
		ready: make(chan struct{}), done: make(chan struct{}), downed: make(chan struct{}),
		endCh: make(chan struct{}), pending: map[uint64]chan *api.Ack{}, evSig: make(chan struct{}, 1),
	}
}

// Name implements node.Node.
func (r *Remote) Name() string { return r.name }

// Info returns the node's Hello of this attach: addresses, ports, client networks, capabilities,
// boot ID, and the flows and sources it reported then. It is shared: do not modify it.
func (r *Remote) Info() Hello { return r.hello }

// Alive reports whether the node's stream still stands.
func (r *Remote) Alive() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Done is closed when the node's stream ends.
func (r *Remote) Done() <-chan struct{} { return r.done }

// Apply implements node.Node: it sends the flow to the node and waits for its ack. A refusal
// keeps the node's code (see Error).
func (r *Remote) Apply(ctx context.Context, f node.Flow) (node.FlowStatus, error) {
	if err := f.Validate(); err != nil {
		return node.FlowStatus{}, fmt.Errorf("node %s: apply: %w", r.name, &Error{Code: CodeInvalid, Msg: err.Error()})
	}
	if err := checkFlowStrings(f); err != nil {
		return node.FlowStatus{}, fmt.Errorf("node %s: apply: %w", r.name, &Error{Code: CodeInvalid, Msg: err.Error()})
	}
	a, err := r.command(ctx, "apply", f.ID, &api.Command{Op: api.Op_APPLY, Flow: FlowToProto(f)})
	if err != nil {
		return node.FlowStatus{}, err
	}
	if !a.Ok {
		return node.FlowStatus{}, ackError(r.name, "apply", f.ID, a)
	}
	st, err := statusFromProto(a.Status)
	if err != nil {
		return node.FlowStatus{}, fmt.Errorf("node %s: apply %s: %w", r.name, f.ID, &Error{Code: CodeInternal, Msg: err.Error()})
	}
	return st, nil
}

// Delete implements node.Node. Deleting a flow the node does not have is not an error on a
// node.Local; the node's answer is passed on as it is.
func (r *Remote) Delete(ctx context.Context, id string) error {
	if id == "" || !validUTF8(id) {
		return fmt.Errorf("node %s: delete %q: %w", r.name, id, &Error{Code: CodeInvalid, Msg: "flow ID is empty or not UTF-8"})
	}
	a, err := r.command(ctx, "delete", id, &api.Command{Op: api.Op_DELETE, FlowId: id})
	if err != nil {
		return err
	}
	if !a.Ok {
		return ackError(r.name, "delete", id, a)
	}
	return nil
}

// Capabilities are what the node said it can do in its Hello.
func (r *Remote) Capabilities() []string { return append([]string(nil), r.hello.Capabilities...) }

// Attached is when the node's stream (this Remote) came.
func (r *Remote) Attached() time.Time { return r.attached }

// LastReport is when the node's last Stats report arrived; zero before the first.
func (r *Remote) LastReport() time.Time {
	if n := r.lastReport.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// CommandLatency is the number of commands the node answered and their summed round trip in
// seconds, from handing each to the send loop to its ack.
func (r *Remote) CommandLatency() (n uint64, seconds float64) {
	return r.cmds.Load(), time.Duration(r.cmdNanos.Load()).Seconds()
}

// Stats implements node.Node with the node's last report (nodes push one every second).
func (r *Remote) Stats(id string) (node.FlowStats, error) {
	r.mu.Lock()
	st, ok := r.stats[id]
	r.mu.Unlock()
	if !ok {
		return node.FlowStats{}, fmt.Errorf("node %s: no stats for flow %s: %w", r.name, id, node.ErrNotFound)
	}
	return st, nil
}

// command sends cmd with the next sequence number and waits for its ack.
func (r *Remote) command(ctx context.Context, op, id string, cmd *api.Command) (*api.Ack, error) {
	ch := make(chan *api.Ack, 1)
	r.mu.Lock()
	if r.dead {
		err := r.downErr
		r.mu.Unlock()
		return nil, fmt.Errorf("node %s: %s %s: %w (%v)", r.name, op, id, ErrNodeDown, err)
	}
	r.seq++
	cmd.Seq = r.seq
	r.pending[cmd.Seq] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, cmd.Seq)
		r.mu.Unlock()
	}()

	timeout := r.s.cfg.CommandTimeout
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	fail := func(err error) (*api.Ack, error) {
		return nil, fmt.Errorf("node %s: %s %s: %w", r.name, op, id, err)
	}
	select {
	case r.out <- &api.ControlMessage{Msg: &api.ControlMessage_Command{Command: cmd}}:
	case <-r.done:
		return fail(r.downError())
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-timer.C:
		return fail(fmt.Errorf("%w in %v (command not even sent)", ErrCommandTimeout, timeout))
	}
	sent := time.Now()
	select {
	case a := <-ch:
		r.cmds.Add(1)
		r.cmdNanos.Add(int64(time.Since(sent)))
		return a, nil
	case <-r.done:
		return fail(r.downError())
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-timer.C:
		return fail(fmt.Errorf("%w in %v", ErrCommandTimeout, timeout))
	}
}

func (r *Remote) downError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Errorf("%w (%v)", ErrNodeDown, r.downErr)
}

// end asks the session to stop with err; the first reason wins.
func (r *Remote) end(err error) {
	r.endOnce.Do(func() {
		r.endErr = err
		close(r.endCh)
	})
}

// recvResult is one Recv.
type recvResult struct {
	msg *api.NodeMessage
	err error
}

// run is the session of one stream, on the gRPC handler goroutine: it waits for the Hello,
// registers the node, delivers Handler calls in order and ends the session.
func (r *Remote) run(presented string) error {
	s := r.s
	ctx := r.stream.Context()
	first := make(chan recvResult, 1)
	s.wg.Add(1)
	go r.recvLoop(first)

	up := false
	err := r.attach(ctx, presented, first, &up)
	r.finish(err)
	if up {
		r.log.Info("node down", "err", err)
		s.cfg.Handler.NodeDown(r, err)
	}
	close(r.downed)
	return sessionStatus(err)
}

// attach registers the node and runs its session until it ends, returning why. up is set once
// NodeUp has been called.
func (r *Remote) attach(ctx context.Context, presented string, first <-chan recvResult, up *bool) error {
	s := r.s
	wait := max(s.cfg.NodeTimeout, minHelloTimeout)
	timer := time.NewTimer(wait)
	var m *api.NodeMessage
	select {
	case res := <-first:
		timer.Stop()
		if res.err != nil {
			return fmt.Errorf("stream ended before hello: %w", res.err)
		}
		m = res.msg
	case <-timer.C:
		r.log.Warn("node refused: no hello", "presented_id", presented, "waited", wait)
		return status.Errorf(codes.DeadlineExceeded, "no hello within %v", wait)
	case <-ctx.Done():
		timer.Stop()
		return fmt.Errorf("stream ended before hello: %w", context.Cause(ctx))
	}
	hp := m.GetHello()
	if hp == nil {
		r.log.Warn("node refused: first message is not hello", "presented_id", presented)
		return status.Error(codes.InvalidArgument, "the first message must be hello")
	}
	if hp.Name != r.name {
		r.log.Warn("node refused: claimed name does not match its identity",
			"presented_id", presented, "claimed_name", hp.Name)
		return status.Errorf(codes.PermissionDenied, "node %q may not register as %q", presented, hp.Name)
	}
	hello, skipped, err := helloFromProto(hp)
	if err != nil {
		r.log.Warn("node refused: bad hello", "err", err)
		return status.Errorf(codes.InvalidArgument, "hello: %v", err)
	}
	for _, e := range skipped {
		r.log.Warn("node reported something the control cannot use; left out", "err", e)
	}
	r.hello = hello
	old, err := s.register(r)
	if err != nil {
		return err
	}
	if old != nil {
		old.end(ErrReplaced)
		select {
		case <-old.downed:
		case <-ctx.Done():
			return fmt.Errorf("stream ended while replacing the previous attach: %w", context.Cause(ctx))
		}
	}
	r.lastSeen.Store(time.Now().UnixNano())
	r.out <- &api.ControlMessage{Msg: &api.ControlMessage_Welcome{Welcome: &api.Welcome{
		Accepted: true, BootId: s.bootID, NodeTimeoutNanos: int64(s.cfg.NodeTimeout),
	}}}
	s.wg.Add(2)
	go r.sendLoop()
	go r.watch()
	close(r.ready)
	r.log.Info("node up", "boot_id", hello.BootID, "data_addr", hello.DataAddr, "rtp_port", hello.RTPPort,
		"flows", len(hello.Flows), "sources", len(hello.Sources), "replaced", old != nil)
	*up = true
	s.cfg.Handler.NodeUp(r, hello)

	for {
		select {
		case <-r.endCh:
			return r.endErr
		case <-ctx.Done():
			// the server is stopping, or the transport went away before Recv noticed
			select {
			case <-r.endCh:
				return r.endErr
			default:
			}
			if s.isClosed() {
				return ErrServerClosed
			}
			return fmt.Errorf("stream ended: %w", context.Cause(ctx))
		case <-r.evSig:
			r.mu.Lock()
			evs := r.events
			r.events = nil
			r.mu.Unlock()
			for _, fn := range evs {
				fn()
			}
		}
	}
}

// finish marks the Remote dead: pending and later commands fail with ErrNodeDown.
func (r *Remote) finish(err error) {
	r.mu.Lock()
	r.dead = true
	r.downErr = err
	r.events = nil
	r.mu.Unlock()
	close(r.done)
	r.s.unregister(r)
}

// sessionStatus is what the node's Recv sees when the session ends.
func sessionStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, ErrReplaced):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, ErrServerClosed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrNodeTimeout):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unavailable, err.Error())
}

// recvLoop reads the node's messages; it hands the first (the Hello) to the session and handles
// the rest itself once the node is registered, so that acks are matched and liveness is tracked
// even while a Handler call runs.
func (r *Remote) recvLoop(first chan<- recvResult) {
	defer r.s.wg.Done()
	m, err := r.stream.Recv()
	first <- recvResult{m, err}
	if err != nil {
		return
	}
	select {
	case <-r.ready:
	case <-r.done:
		return
	}
	for {
		m, err := r.stream.Recv()
		if err != nil {
			if r.s.isClosed() {
				// the server's Stop cancels the stream under us
				err = ErrServerClosed
			} else if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				err = fmt.Errorf("node closed the stream: %w", err)
			} else {
				err = fmt.Errorf("receive: %w", err)
			}
			r.end(err)
			return
		}
		r.lastSeen.Store(time.Now().UnixNano())
		r.handle(m)
	}
}

// handle processes one message of a registered node.
func (r *Remote) handle(m *api.NodeMessage) {
	switch msg := m.Msg.(type) {
	case *api.NodeMessage_Ack:
		a := msg.Ack
		r.mu.Lock()
		ch := r.pending[a.Seq]
		delete(r.pending, a.Seq)
		r.mu.Unlock()
		if ch == nil {
			r.log.Debug("ack for no waiting command (it timed out)", "seq", a.Seq, "flow", a.FlowId, "ok", a.Ok)
			return
		}
		ch <- a
	case *api.NodeMessage_Stats:
		r.lastReport.Store(time.Now().UnixNano())
		stats := make(map[string]node.FlowStats, len(msg.Stats.Flows))
		for _, f := range msg.Stats.Flows {
			stats[f.FlowId] = statsFromProto(f)
		}
		r.mu.Lock()
		r.stats = stats
		r.mu.Unlock()
	case *api.NodeMessage_SourceEvent:
		ev := msg.SourceEvent
		var fn func()
		if ev.Ready {
			tracks, err := tracksFromProto(ev.Tracks)
			if err != nil {
				r.log.Warn("source event dropped", "stream", ev.Stream, "err", err)
				return
			}
			fn = func() { r.s.cfg.Handler.SourceReady(r, ev.Stream, ev.Sdp, tracks, ev.Replaced) }
		} else {
			err := errors.New(ev.Error)
			if ev.Error == "" {
				err = errors.New("source down")
			}
			fn = func() { r.s.cfg.Handler.SourceDown(r, ev.Stream, err) }
		}
		r.mu.Lock()
		r.events = append(r.events, fn)
		r.mu.Unlock()
		select {
		case r.evSig <- struct{}{}:
		default:
		}
	case *api.NodeMessage_Pong:
		// liveness only
	case *api.NodeMessage_Hello:
		r.log.Warn("second hello on one stream ignored")
	default:
		// a newer node's message this control does not know; liveness still counts
	}
}

// sendLoop is the only writer of the stream.
func (r *Remote) sendLoop() {
	defer r.s.wg.Done()
	for {
		select {
		case m := <-r.out:
			if err := r.stream.Send(m); err != nil {
				if r.s.isClosed() {
					err = ErrServerClosed
				}
				r.end(fmt.Errorf("send: %w", err))
				return
			}
		case <-r.done:
			return
		}
	}
}

// watch pings the node and declares it dead when nothing arrived for NodeTimeout. It is apart
// from the handler goroutine (busy in Handler calls) and the sender (blocked by a node that
// stopped reading), so detection is on time in both cases.
func (r *Remote) watch() {
	defer r.s.wg.Done()
	timeout := r.s.cfg.NodeTimeout
	ping := time.NewTicker(timeout / 4)
	defer ping.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var nonce uint64
	for {
		select {
		case <-r.done:
			return
		case <-ping.C:
			nonce++
			select {
			case r.out <- &api.ControlMessage{Msg: &api.ControlMessage_Ping{Ping: &api.Ping{Nonce: nonce}}}:
			default:
			}
		case <-deadline.C:
			idle := time.Since(time.Unix(0, r.lastSeen.Load()))
			if idle >= timeout {
				r.end(fmt.Errorf("%w for %v", ErrNodeTimeout, idle.Round(time.Millisecond)))
				return
			}
			deadline.Reset(timeout - idle)
		}
	}
}
