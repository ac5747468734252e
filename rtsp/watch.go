package rtsp

import "sync"

// watcher ends sessions when their stream ends under them: the reader's player then sees the end
// of the stream instead of silence. Sessions whose streams share one Done channel (every reader of
// a stream shares the stream's) share one goroutine waiting on it; a goroutine per session was,
// with its stack, most of what an idle session cost.
type watcher struct {
	s      *Server
	mu     sync.Mutex
	groups map[<-chan struct{}]*watchGroup
}

// watchGroup is the sessions waiting on one Done channel, and their goroutine's way out.
type watchGroup struct {
	sessions map[*session]struct{}
	quit     chan struct{} // closed when the last session leaves before the stream ends
}

// add watches ss, whose stream ends when done is closed, unless ss is already closed.
func (w *watcher) add(ss *session, done <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ss.isClosed() {
		// its close has passed remove already
		return
	}
	g := w.groups[done]
	if g == nil {
		g = &watchGroup{sessions: map[*session]struct{}{}, quit: make(chan struct{})}
		w.groups[done] = g
		w.s.wg.Add(1)
		go w.run(done, g)
	}
	g.sessions[ss] = struct{}{}
}

// remove stops watching ss (closing); the last session of a group ends its goroutine.
func (w *watcher) remove(ss *session, done <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.groups[done]
	if g == nil {
		return
	}
	if _, ok := g.sessions[ss]; !ok {
		return
	}
	delete(g.sessions, ss)
	if len(g.sessions) == 0 {
		delete(w.groups, done)
		close(g.quit)
	}
}

// run waits for done, then ends every session of g by closing it and its connection.
func (w *watcher) run(done <-chan struct{}, g *watchGroup) {
	defer w.s.wg.Done()
	select {
	case <-g.quit:
		return
	case <-done:
	}
	w.mu.Lock()
	if w.groups[done] == g {
		// sessions that join now, with done already closed, get a group (and an end) of their own
		delete(w.groups, done)
	}
	ended := make([]*session, 0, len(g.sessions))
	for ss := range g.sessions {
		ended = append(ended, ss)
	}
	clear(g.sessions)
	w.mu.Unlock()
	for _, ss := range ended {
		ss.c.log.Info("rtsp session ended by the stream", "session", ss.id, "path", ss.path)
		ss.close("stream ended")
		ss.c.nc.Close()
	}
}
