//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// runner is one run's state.
type runner struct {
	cfg      Config
	tls      *tls.Config // rtsps:// client configuration; nil: defaults
	clock    clock
	progress io.Writer
	rep      *Report
	urls     []*base.URL // the routes read

	pubs    []*publisher
	workers []*udpWorker
	readers []*reader
	groups  []*rxGroup
	ka      *keepalive
}

// run performs one load run: publish (optionally), set the readers up, warm
// up, measure the gateway over the window, run the floor, tear down. A
// failure that leaves nothing to measure is an error; lesser trouble (some
// readers failing) is reported in the Report.
func run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	urls, err := cfg.streamURLs()
	if err != nil {
		return nil, err
	}
	pubURLs, err := cfg.publishURLs(urls)
	if err != nil {
		return nil, err
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	rn := &runner{cfg: cfg, tls: tc, clock: newClock(), progress: progress, rep: &Report{
		URL: cfg.URL, Transport: cfg.Transport, Tracks: cfg.Tracks, Readers: cfg.Readers,
		RcvBufRequested: cfg.RcvBuf, RcvBuf: -1,
	}}
	rn.urls = urls
	for _, u := range urls {
		rn.rep.Streams = append(rn.rep.Streams, u.String())
	}
	defer rn.shutdown()
	if err := rn.start(ctx, urls, pubURLs); err != nil {
		return rn.rep, err
	}
	if err := sleepCtx(ctx, cfg.Warmup); err != nil {
		return rn.rep, err
	}
	best, err := rn.window(ctx)
	if err != nil {
		return rn.rep, err
	}
	switch {
	case !cfg.Floor, len(rn.readers) == 0:
	case cfg.Transport == "tcp":
		rn.note("floor: n/a for tcp readers")
	default:
		if err := rn.floor(ctx, best); err != nil {
			rn.note(err.Error())
		}
	}
	return rn.rep, nil
}

func (rn *runner) logf(format string, args ...any) {
	if rn.progress != nil {
		fmt.Fprintf(rn.progress, "meshload: "+format+"\n", args...)
	}
}

func (rn *runner) note(s string) { rn.rep.Notes = append(rn.rep.Notes, s) }

// start publishes, waits for the routes if asked to, starts the receive
// workers and sets the readers up.
func (rn *runner) start(ctx context.Context, urls, pubURLs []*base.URL) error {
	cfg := &rn.cfg
	if len(pubURLs) > 0 {
		for _, u := range pubURLs {
			p, err := openPublisher(ctx, cfg, rn.tls, u, rn.clock)
			if err != nil {
				return fmt.Errorf("publish %s: %w", u, err)
			}
			rn.pubs = append(rn.pubs, p)
			go p.run()
		}
		rn.logf("publishing %d × %.1f Mbit/s over %s", len(rn.pubs), float64(cfg.Stream.Bitrate)/1e6, cfg.PublishTransport)
	}
	if cfg.WaitRoutes > 0 {
		t0 := time.Now()
		if err := waitRoutes(ctx, cfg, rn.tls, urls); err != nil {
			return err
		}
		rn.rep.RoutesReadySeconds = time.Since(t0).Seconds()
		rn.logf("%d routes answer DESCRIBE after %.1fs", len(urls), rn.rep.RoutesReadySeconds)
	}
	if cfg.Transport == "udp" {
		for range cfg.RxWorkers {
			w, err := newUDPWorker(&rxGroup{}, rn.clock, cfg.RxCoalesce)
			if err != nil {
				return err
			}
			rn.workers = append(rn.workers, w)
		}
	}
	env := &readerEnv{cfg: cfg, tls: rn.tls, clock: rn.clock, workers: rn.workers,
		logCap: int(min(cfg.Duration, maxSchedule).Seconds()*schedMaxRate) + 1024}
	t0 := time.Now()
	failed, first := rn.openReaders(ctx, env, urls)
	rn.rep.SetupSeconds = time.Since(t0).Seconds()
	rn.rep.ReadersOK, rn.rep.ReadersFailed = len(rn.readers), failed
	if first != nil {
		rn.rep.FirstError = first.Error()
	}
	rn.logf("%d readers playing, %d failed, in %.1fs", len(rn.readers), failed, rn.rep.SetupSeconds)
	if len(rn.readers) > 0 {
		rn.rep.RcvBuf = rn.readers[0].rcvbuf
	}
	var conns []kaConn
	for _, r := range rn.readers {
		conns = append(conns, kaConn{r.rc, r.url})
	}
	for _, p := range rn.pubs {
		conns = append(conns, kaConn{p.rc, p.url})
	}
	rn.ka = startKeepalive(conns, cfg.Keepalive)
	if len(rn.readers) == 0 && cfg.Readers > 0 {
		return fmt.Errorf("no reader could be set up: %w", first)
	}
	// groups in a fixed order with ids, so snapshots can be indexed by line
	for _, w := range rn.workers {
		rn.groups = append(rn.groups, w.g)
	}
	for _, r := range rn.readers {
		if r.group != nil {
			rn.groups = append(rn.groups, r.group)
		}
	}
	for i, g := range rn.groups {
		g.id = i
	}
	return nil
}

// openReaders sets cfg.Readers readers up, SetupParallel at a time; reader
// i reads urls[routeOf(i, len(urls))]. It keeps the ones that play and returns how
// many failed and the error of the first (lowest index) that did.
func (rn *runner) openReaders(ctx context.Context, env *readerEnv, urls []*base.URL) (int, error) {
	n := rn.cfg.Readers
	out := make([]*reader, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(rn.cfg.SetupParallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				route := routeOf(i, len(urls))
				r, err := env.openReader(ctx, i, urls[route])
				if err != nil {
					errs[i] = fmt.Errorf("reader %d: %w", i, err)
					continue
				}
				r.route = route
				out[i] = r
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			for j := i; j < n; j++ {
				errs[j] = ctx.Err()
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	failed := 0
	var first error
	for i := range n {
		if out[i] != nil {
			rn.readers = append(rn.readers, out[i])
			continue
		}
		failed++
		if first == nil {
			first = errs[i]
		}
	}
	return failed, first
}

// pauseAll sends PAUSE to every reader, SetupParallel at a time, and returns
// how many accepted it.
func (rn *runner) pauseAll() int {
	ok := 0
	var mu sync.Mutex
	rn.eachReader(func(r *reader) {
		if r.pause() == nil {
			mu.Lock()
			ok++
			mu.Unlock()
		}
	})
	return ok
}

// eachReader calls fn for every reader, SetupParallel at a time.
func (rn *runner) eachReader(fn func(*reader)) {
	next := make(chan *reader)
	var wg sync.WaitGroup
	for range min(rn.cfg.SetupParallel, len(rn.readers)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				fn(r)
			}
		}()
	}
	for _, r := range rn.readers {
		next <- r
	}
	close(next)
	wg.Wait()
}

// shutdown ends everything start began, in the order that keeps the
// gateway from sending to closed sockets for long: keepalives, readers'
// TEARDOWN, receive workers and their sockets, then the publishers.
func (rn *runner) shutdown() {
	if rn.ka != nil {
		rn.rep.KeepaliveErrors = rn.ka.stop()
	}
	rn.eachReader(func(r *reader) { _ = r.teardown() })
	for _, w := range rn.workers {
		if err := w.stop(); err != nil {
			rn.note(err.Error())
		}
		w.closeAll()
	}
	var frames, packets, failed uint64
	for _, p := range rn.pubs {
		p.halt()
		p.close()
		frames += p.frames
		packets += p.packets
		failed += p.failed
		if p.err != nil {
			rn.note(fmt.Sprintf("publisher %s stopped: %v", p.url, p.err))
		}
	}
	if len(rn.pubs) > 0 {
		rn.rep.Publish = &PublishReport{Publishers: len(rn.pubs), URL: rn.cfg.PublishURL, Transport: rn.cfg.PublishTransport,
			BitrateBPS: rn.cfg.Stream.Bitrate, FPS: rn.cfg.Stream.FPS, Frames: frames, Packets: packets, SendFailures: failed}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
