package node

// publisherSource runs a SourcePublisher flow: it lays out the hubs of the tracks the publisher
// announced; the packets come through IngressUDP flows or interleaved on the control's
// connection.
type publisherSource struct{}

func (publisherSource) start(n *Local, fl *flow) (func(), error) {
	return n.startSourceLocked(fl, func() (func(), error) {
		return n.publisherHubsLocked(fl.stream, fl.spec.Spec.(PublisherSource)), nil
	})
}

// publisherHubsLocked lays out a publisher's hubs; when that replaces the stream's layout, the
// returned report (to run without the lock) tells the control, which ends the old layout's
// readers as they cannot follow.
func (n *Local) publisherHubsLocked(s *nodeStream, sp PublisherSource) func() {
	replaced := n.setHubsLocked(s, sp.Tracks, sp.Pacing, nil)
	if !replaced || n.events == nil {
		return nil
	}
	ev, id, tracks := n.events, s.id, sp.Tracks
	return func() { ev.SourceReady(id, nil, tracks, true) }
}

// update takes a new publisher on a stream that outlived the previous one.
func (publisherSource) update(n *Local, fl *flow, f Flow) error {
	report := n.publisherHubsLocked(fl.stream, f.Spec.(PublisherSource))
	fl.spec = f
	if report != nil {
		n.after = append(n.after, report)
	}
	return nil
}

func (publisherSource) stats(_ *Local, fl *flow) FlowStats { return fl.counts() }

func (publisherSource) stop(n *Local, fl *flow) func() {
	return closeHubs(n.stopSourceLocked(fl), nil)
}
