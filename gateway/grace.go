package gateway

import (
	"context"
	"time"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/rtsp"
)

// grace is the startup grace's gate. After a restart it holds OpenRead and OpenPublish (through
// sessions) until failover has rebuilt the state from the nodes' reports. adopted is closed when
// FinishAdoption is done, nil when there is no startup grace (nothing to wait for); graceEnd is
// when the grace ends. Both are set before the front door opens and never change after.
type grace struct {
	*core
	adopted  chan struct{}
	graceEnd time.Time
}

// hold makes the requests that could start a source or place a reader (OpenRead,
// OpenPublish) wait until FinishAdoption has run. After a control restart, players whose RTSP
// connection died with the old control come back at once, before the nodes have re-attached:
// served then, the control would start the stream again on whatever node is attached (its own)
// and later delete the nodes' flows as unwanted, cutting the readers that had kept playing.
// Call it once, before the front door and the node endpoint open; without a grace it is not
// called and requests never wait.
//
// The grace is not ended early when the nodes seem to be back: after a restart the control
// cannot know which nodes exist until each has attached, so only the grace says when all have
// had their chance.
func (g *grace) hold(d time.Duration) {
	g.adopted = make(chan struct{})
	g.graceEnd = time.Now().Add(d)
}

// end lets held requests go on: the state has been rebuilt and always-on sources started.
func (g *grace) end() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.adopted == nil {
		return
	}
	select {
	case <-g.adopted:
	default:
		close(g.adopted)
	}
}

// await waits, during the startup grace, until the rebuilt state is in place, so that the
// request then finds the adopted stream and relays as if it had come after the grace. The wait is
// bounded by what is left of the grace plus the route's on_demand_start_timeout: the adoption
// itself waits at most that long for a re-ingested source. Past the bound the control is not in
// a state to answer, so the request is refused with 503 and a Retry-After of one more
// on_demand_start_timeout (rather than served from a half-rebuilt state, which is the harm the
// wait avoids); players retry or their users do.
func (g *grace) await(ctx context.Context, r config.Route) error {
	if g.adopted == nil {
		return nil
	}
	select {
	case <-g.adopted:
		return nil
	default:
	}
	wait := startTimeout(r)
	t := time.NewTimer(time.Until(g.graceEnd) + wait)
	defer t.Stop()
	select {
	case <-g.adopted:
		return nil
	case <-t.C:
		return &rtsp.Error{Status: rtsp.StatusServiceUnavailable, Msg: "the control is still rebuilding its state from the nodes after a restart", RetryAfter: wait}
	case <-ctx.Done():
		return &rtsp.Error{Status: rtsp.StatusServiceUnavailable, Msg: "gave up waiting for the control's state after a restart", Err: ctx.Err(), RetryAfter: wait}
	case <-g.done:
		return rtsp.Errorf(rtsp.StatusServiceUnavailable, "shutting down")
	}
}

// startTimeout is how long a request or a re-ingest waits for the route's source to come up
// (on_demand_start_timeout, 10 s when unset).
func startTimeout(r config.Route) time.Duration {
	if r.OnDemandStartTimeout > 0 {
		return r.OnDemandStartTimeout
	}
	return 10 * time.Second
}
