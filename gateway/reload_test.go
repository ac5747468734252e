package gateway

import (
	"context"
	"slices"
	"testing"

	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
)

// TestControlReload applies a new route table to a started control over a recording node: an
// unchanged route (that only moved in the file) keeps its stream and gets no flow, a removed
// route's stream ends (its readers' channel closes) and its source flow is deleted, a changed
// source is the same flow applied again with the new spec, and an added always-on route starts.
func TestControlReload(t *testing.T) {
	parse := func(y string) *config.Config {
		t.Helper()
		c, err := config.Parse("reload.yaml", []byte("node: {name: control}\nrtsp: {listen: \"127.0.0.1:0\"}\nroutes:\n"+y))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	local := &recNode{name: "control"}
	c := New(parse("  keep: {source: demo}\n  gone: {source: demo}\n  swap: {source: demo}\n"), local, nil)
	t.Cleanup(c.Close)
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	keep, gone, swap := c.streams.table["keep"], c.streams.table["gone"], c.streams.table["swap"]
	c.mu.Unlock()
	goneCh, goneFlow, swapFlow := gone.gone, gone.sourceFlow, swap.sourceFlow
	before, _ := local.calls()

	d := c.Reload(ctx, parse("  added: {source: demo}\n  swap: {source: demo, pacing: 2}\n\n  keep: {source: demo}\n"))
	if !slices.Equal(d.Added, []string{"added"}) || !slices.Equal(d.Removed, []string{"gone"}) ||
		!slices.Equal(d.Changed, []string{"swap"}) || !slices.Equal(d.Unchanged, []string{"keep"}) {
		t.Errorf("diff = %+v", d)
	}
	c.mu.Lock()
	if c.streams.table["keep"] != keep || c.streams.table["swap"] != swap || c.streams.table["gone"] != nil {
		t.Errorf("stream table after the reload: keep %v, swap %v, gone %v", c.streams.table["keep"] == keep,
			c.streams.table["swap"] == swap, c.streams.table["gone"])
	}
	added := c.streams.table["added"]
	c.mu.Unlock()
	select {
	case <-goneCh:
	default:
		t.Error("the removed route's readers were not told their stream ended")
	}
	local.mu.Lock()
	defer local.mu.Unlock()
	if !slices.Contains(local.deleted, goneFlow) {
		t.Errorf("the removed route's source flow %s was not deleted (deleted %v)", goneFlow, local.deleted)
	}
	var swapped, started bool
	for _, f := range local.applied[before:] {
		switch {
		case f.Stream == keep.id:
			t.Errorf("a flow of the unchanged route was applied: %+v", f)
		case f.ID == swapFlow:
			sp, ok := f.Spec.(node.DemoSource)
			swapped = ok && sp.Pacing == 2 && f.Version > 1
		case added != nil && f.Stream == added.id:
			started = true
		}
	}
	if !swapped {
		t.Errorf("the changed route's source flow %s was not applied again with pacing 2", swapFlow)
	}
	if !started {
		t.Error("the added route's source was not started")
	}
}

func TestSameMedia(t *testing.T) {
	a := []byte("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=AAA\r\na=control:trackID=0\r\n")
	b := []byte("v=0\r\no=- 9 9 IN IP4 5.6.7.8\r\nm=video 0 RTP/AVP 96\r\na=control:streamid=0\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=AAA\r\n")
	c := []byte("v=0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=BBB\r\n")
	if !sameMedia(a, b) {
		t.Error("descriptions that differ only in origin and control URLs differ")
	}
	if sameMedia(a, c) {
		t.Error("other H.264 parameter sets are the same media")
	}
}
