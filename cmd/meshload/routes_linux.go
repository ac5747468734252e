//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// routeRetry is the pause between two DESCRIBEs of a route that is not up yet.
const routeRetry = 200 * time.Millisecond

// waitRoutes DESCRIBEs every route, SetupParallel at a time, until each has
// answered 2xx once or cfg.WaitRoutes has passed. A pulled route answers once
// its pull is up; waiting here keeps a pull still in its reconnect backoff
// from being counted as readers failing to set up, and with no readers it is
// what shows that the pulls run.
func waitRoutes(ctx context.Context, cfg *Config, tc *tls.Config, urls []*base.URL) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.WaitRoutes)
	defer cancel()
	errs := make([]error, len(urls))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(cfg.SetupParallel, len(urls)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = waitRoute(ctx, cfg, tc, urls[i])
			}
		}()
	}
	for i := range urls {
		next <- i
	}
	close(next)
	wg.Wait()
	down := 0
	var first error
	for _, err := range errs {
		if err != nil {
			down++
			if first == nil {
				first = err
			}
		}
	}
	if down > 0 {
		return fmt.Errorf("%d of %d routes did not answer DESCRIBE within -wait-routes %s; first: %w", down, len(urls), cfg.WaitRoutes, first)
	}
	return nil
}

// waitRoute DESCRIBEs u until it answers 2xx or ctx ends, and returns the
// last failure in that case.
func waitRoute(ctx context.Context, cfg *Config, tc *tls.Config, u *base.URL) error {
	for {
		err := describeOnce(ctx, cfg, tc, u)
		if err == nil {
			return nil
		}
		if sleepCtx(ctx, routeRetry) != nil {
			return fmt.Errorf("%s: %w", u, err)
		}
	}
}

func describeOnce(ctx context.Context, cfg *Config, tc *tls.Config, u *base.URL) error {
	rc, err := dialRTSP(ctx, u, tc, cfg.Timeout, rtspSmallBuf)
	if err != nil {
		return err
	}
	defer rc.close()
	_, err = rc.request(base.Describe, u, base.Header{"Accept": base.HeaderValue{"application/sdp"}}, nil)
	return err
}

// routeAcc gathers the window's per-route, per-track accounting.
type routeAcc struct{ routes []RouteReport }

func newRouteAcc(urls []*base.URL) *routeAcc {
	a := &routeAcc{routes: make([]RouteReport, len(urls))}
	for i, u := range urls {
		a.routes[i].URL = u.String()
	}
	return a
}

// addReader counts one reader of route.
func (a *routeAcc) addReader(route int) { a.routes[route].Readers++ }

// addLine adds one reader track's window to its route.
func (a *routeAcc) addLine(route, track int, w lineWindow) {
	r := &a.routes[route]
	for len(r.Tracks) <= track {
		r.Tracks = append(r.Tracks, TrackReport{Track: len(r.Tracks)})
	}
	t := &r.Tracks[track]
	t.Lines++
	t.Expected += w.Expected
	t.Received += w.Received
	t.Lost += w.Lost
	t.MaxSSRCs = max(t.MaxSSRCs, w.SSRCs)
	r.Delivered += w.Received
	r.Expected += w.Expected
	r.Lost += w.Lost
}

// report computes each route's loss and the spread of loss over the routes.
func (a *routeAcc) report() *RoutesReport {
	rep := &RoutesReport{Routes: len(a.routes), PerRoute: a.routes}
	if len(a.routes) == 0 {
		return rep
	}
	pcts := make([]float64, len(a.routes))
	rep.MinReaders = a.routes[0].Readers
	for i := range a.routes {
		r := &a.routes[i]
		r.Percent = pct(r.Lost, r.Expected)
		for j := range r.Tracks {
			r.Tracks[j].Percent = pct(r.Tracks[j].Lost, r.Tracks[j].Expected)
		}
		pcts[i] = r.Percent
		rep.Delivered += r.Delivered
		rep.MinReaders = min(rep.MinReaders, r.Readers)
		rep.MaxReaders = max(rep.MaxReaders, r.Readers)
		if r.Lost > 0 {
			rep.RoutesWithLoss++
		}
	}
	slices.Sort(pcts)
	rep.MinPercent, rep.MaxPercent = pcts[0], pcts[len(pcts)-1]
	if n := len(pcts); n%2 == 1 {
		rep.MedianPercent = pcts[n/2]
	} else {
		rep.MedianPercent = (pcts[n/2-1] + pcts[n/2]) / 2
	}
	return rep
}
