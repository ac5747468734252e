// Package routetest stands in for the control in tests of packages below gateway that read
// routes (rtsp/hls, rtsp/record), which may not import the control: a route fed by the demo
// clip's player into real hubs, opened through the rtsp.Handler contract.
package routetest

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
	"github.com/meshgw/meshgw/rtsp/demo"
)

// Demo is route "demo", fed by the demo clip's player into real hubs: each OpenRead is one
// reader of the hubs, as an interleaved reader of the control is.
type Demo struct {
	mu     sync.Mutex
	sdp    []byte
	tracks []rtp.Track
	hubs   []*rtp.Hub
	ready  chan struct{}
	// Opens and Closes count the readers opened and closed.
	Opens  atomic.Int32
	Closes atomic.Int32
	player *demo.Player
}

// StartDemo starts the player; it and the hubs stop when the test ends.
func StartDemo(t testing.TB) *Demo {
	t.Helper()
	c, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	d := &Demo{ready: make(chan struct{})}
	d.player = demo.NewPlayer(c, d, nil)
	d.player.Start()
	t.Cleanup(func() {
		d.player.Close()
		for _, h := range d.hubs {
			h.Close()
		}
	})
	return d
}

// OnReady implements rtp.SourceHandler.
func (d *Demo) OnReady(sdp []byte, tracks []rtp.Track) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hubs == nil {
		d.sdp, d.tracks = sdp, tracks
		for _, tr := range tracks {
			d.hubs = append(d.hubs, rtp.NewHub(rtp.HubConfig{Track: tr}))
		}
		close(d.ready)
	}
	return nil
}

// WriteRTP implements rtp.SourceHandler.
func (d *Demo) WriteRTP(track int, pkt []byte) { _ = d.hubs[track].WriteRTP(pkt) }

// WriteRTCP implements rtp.SourceHandler.
func (d *Demo) WriteRTCP(int, []byte) {}

// OnDisconnect implements rtp.SourceHandler.
func (d *Demo) OnDisconnect(error) {}

// OpenRead implements the control's OpenRead for route "demo" (404 for any other).
func (d *Demo) OpenRead(ctx context.Context, _ rtsp.ConnInfo, path string) (rtsp.ReadStream, error) {
	if path != "demo" {
		return nil, rtsp.Errorf(rtsp.StatusNotFound, "no route matches %q", path)
	}
	select {
	case <-d.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	d.Opens.Add(1)
	return &demoReader{d: d}, nil
}

type demoReader struct {
	d    *Demo
	once sync.Once
}

func (r *demoReader) SDP() []byte         { return r.d.sdp }
func (r *demoReader) Tracks() []rtp.Track { return r.d.tracks }
func (r *demoReader) SetupUDP(context.Context, int, netip.AddrPort, netip.AddrPort) (rtsp.UDPSetup, error) {
	return rtsp.UDPSetup{}, rtsp.Errorf(rtsp.StatusUnsupportedTransp, "no UDP")
}
func (r *demoReader) SetupMulticast(context.Context, int) (rtsp.MulticastSetup, error) {
	return rtsp.MulticastSetup{}, rtsp.Errorf(rtsp.StatusUnsupportedTransp, "no multicast")
}
func (r *demoReader) SetupTCP(_ context.Context, track int) (*rtp.Hub, error) {
	return r.d.hubs[track], nil
}
func (r *demoReader) Play(context.Context) ([]rtsp.TrackPosition, error) { return nil, nil }
func (r *demoReader) Pause(context.Context) error                        { return nil }
func (r *demoReader) LastActivity() time.Time                            { return time.Time{} }
func (r *demoReader) Done() <-chan struct{}                              { return nil }
func (r *demoReader) Close()                                             { r.once.Do(func() { r.d.Closes.Add(1) }) }
