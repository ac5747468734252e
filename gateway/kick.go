package gateway

import (
	"fmt"

	"github.com/meshgw/meshgw/gateway/ops"
)

// Kick implements ops.Kicker: it ends the front-door session with this ops.Session ID (a
// reader's id, a publisher's remote address) through the RTSP server, which closes the
// session's connection so that the player sees the end at once. The reader's or publisher's
// flows go with the session, as on TEARDOWN.
func (g *Gateway) Kick(id string) error {
	h := g.Control.sessionHandle(id)
	if h == nil {
		return fmt.Errorf("no session %q: %w", id, ops.ErrNotFound)
	}
	if !g.RTSP.EndSession(h, "kicked through the API") {
		// A route output, a reader adopted from a previous control, or one between DESCRIBE
		// and SETUP: no RTSP session to end.
		return fmt.Errorf("session %q has no RTSP session to end: %w", id, ops.ErrNotFound)
	}
	g.log.Info("session kicked", "session", id)
	return nil
}

// sessionHandle is the stream handle (what OpenRead or OpenPublish returned) of the reader or
// publisher with this ops.Session ID, nil when there is none.
func (c *Control) sessionHandle(id string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.streams.table {
		for rd := range s.rdrs {
			if rd.id == id {
				return rd
			}
		}
		// opsview.go names a publisher's session after its stream.
		if p := s.publisher; p != nil && "pub-"+s.id == id {
			return p
		}
	}
	return nil
}
