package node

import (
	"fmt"
	"reflect"
)

// A source flow applied again, with a newer version and another spec (a route whose source
// changed on a config reload), replaces the source in place: the old client stops, the stream
// keeps its hubs and every sink on them, and the new client feeds the same hubs. Readers stay on
// their line (setHubsLocked keeps hubs of the same layout and starts a new epoch on them) and
// see the new source; a new source with another track layout replaces the hubs, which reports
// the stream replaced and ends the old layout's readers, as a camera that changed its layout
// does.

// replaceable reports whether f, applied over source flow fl, replaces it: both are sources fed
// by a client of the node (demo, pull, rtp://, or any of them with a backup) of one stream, f is
// newer and its spec differs. Publisher and relay sources are updated as before.
func replaceable(fl *flow, f Flow) bool {
	if fl.role != roleSource || f.Stream != fl.spec.Stream || (f.Version != 0 && f.Version <= fl.spec.Version) {
		return false
	}
	return clientFed(fl.spec) && clientFed(f) && !reflect.DeepEqual(fl.spec.Spec, f.Spec)
}

// clientFed reports whether f is a source whose packets come from a client the node runs.
func clientFed(f Flow) bool {
	switch f.Spec.(type) {
	case DemoSource, PullSource, RTPSource:
		return true
	}
	return false
}

// replaceSourceLocked stops source flow fl, keeping its stream's hubs, and starts f, which has
// fl's ID, in its place. The old client is closed before the new one starts, both once the lock
// is released, so the hubs never take packets from both.
func (n *Local) replaceSourceLocked(fl *flow, f Flow) (FlowStatus, error) {
	r, role, err := newRunner(f)
	if err != nil {
		return FlowStatus{}, err
	}
	s := fl.stream
	s.replacing = true
	stop := fl.run.stop(n, fl)
	s.replacing = false
	delete(n.flows, fl.spec.ID)
	n.after = append(n.after, stop)
	nfl := &flow{spec: f, run: r, role: role}
	start, err := r.start(n, nfl)
	if err != nil {
		// the stream has no source now; its sinks stay until the control deletes them
		return FlowStatus{}, fmt.Errorf("node %s: replace source %s with %s: %w", n.name, f.ID, f.Kind(), err)
	}
	if start != nil {
		n.after = append(n.after, start)
	}
	n.log.Info("source replaced", "stream", f.Stream, "flow", f.ID, "kind", f.Kind())
	return n.statusLocked(nfl), nil
}
