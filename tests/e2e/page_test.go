package e2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// Colours of the status page's stylesheet (page.css), as getComputedStyle reports them.
const (
	pageGreen = "rgb(42, 157, 58)"
	pageRed   = "rgb(214, 40, 40)"
)

// pageNode is a JavaScript expression: the fill colour of the named node's circle in the mesh
// picture, "" when the picture has no such node.
func pageNode(name string) string {
	return fmt.Sprintf(`(() => { const g = document.querySelector('#mesh g.node[data-node=%q] circle'); return g ? getComputedStyle(g).fill : ""; })()`, name)
}

// TestStatusPageShowsMesh loads the control's status page in headless Chromium (inside the
// control's network namespace) against a real cluster: a control and two nodes, each in its own
// namespace. The picture shows the three nodes; an ffmpeg reader on node-b's network appears
// joined to node-b, with the relay link node-a → node-b; a SIGKILLed node-b turns red within the
// node timeout (5 s) while its reader moves to node-a; when ffmpeg quits, the reader disappears.
// Screenshots of each step are saved as artifacts ($MESHGW_ARTIFACTS).
func TestStatusPageShowsMesh(t *testing.T) {
	peertest.RequireChromium(t)
	c := newClusterOpts(t, clusterOpts{api: true})
	const nodeTimeout = 5 * time.Second // newClusterOpts' control.node_timeout
	b := peertest.NewBrowserOn(t, c.ctl)
	opened := time.Now()
	if err := b.Navigate("http://127.0.0.1:9997/"); err != nil {
		t.Fatal(err)
	}
	wait := func(what, expr string, d time.Duration) {
		t.Helper()
		if err := b.WaitJS(expr, d); err != nil {
			b.Screenshot("failed")
			problem, _ := peertest.Eval[string](b, `document.body.dataset.error || ""`)
			t.Fatalf("page: %s: %v (page error: %q)", what, err, problem)
		}
	}
	for _, n := range []string{"control", "node-a", "node-b"} {
		wait(n+" drawn up (green)", pageNode(n)+` === "`+pageGreen+`"`, 15*time.Second)
	}
	if n, err := peertest.Eval[int](b, `document.querySelectorAll('#mesh g.node').length`); err != nil || n != 3 {
		t.Fatalf("picture has %d nodes (%v), want 3", n, err)
	}

	// A reader on player 2's network is served by node-b over a relay from node-a.
	ctx := context.Background()
	ff := c.p2.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp", c.url, 60)...)
	wait("reader drawn at node-b", `document.querySelector('#mesh g.reader[data-node="node-b"][data-route="demo"]')`, 20*time.Second)
	wait("relay link node-a → node-b drawn", `document.querySelector('#mesh path.link[data-from="node-a"][data-to="node-b"]')`, 10*time.Second)
	wait("reader listed under its route", `document.querySelector('#routes tr[data-route="demo"] li[data-node="node-b"]')`, 5*time.Second)
	health, _ := peertest.Eval[string](b, `document.querySelector('#mesh path.link[data-from="node-a"][data-to="node-b"]').dataset.health`)
	t.Logf("relay node-a → node-b health on the page: %s", health)
	b.Screenshot("1-reader-on-node-b")

	// Kill node-b: it turns red within the node timeout and the reader moves to node-a.
	killed := time.Now()
	if err := c.bP.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait("node-b drawn down (red)", pageNode("node-b")+` === "`+pageRed+`"`, 3*nodeTimeout)
	red := time.Since(killed)
	t.Logf("node-b red on the page %v after SIGKILL", red.Round(time.Millisecond))
	if red > nodeTimeout {
		t.Errorf("node-b turned red %v after the kill, want within the node timeout %v", red, nodeTimeout)
	}
	if fill, _ := peertest.Eval[string](b, pageNode("node-a")); fill != pageGreen {
		t.Errorf("node-a drawn %s after node-b's death, want green", fill)
	}
	wait("reader moved to node-a", `document.querySelector('#mesh g.reader[data-node="node-a"][data-route="demo"]') && !document.querySelector('#mesh g.reader[data-node="node-b"]')`, 15*time.Second)
	b.Screenshot("2-node-b-down")

	// ffmpeg quits (SIGINT: it sends TEARDOWN): the reader leaves the picture and the table.
	if err := ff.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	wait("reader gone", `!document.querySelector('#mesh g.reader') && !document.querySelector('#routes li[data-session]')`, 15*time.Second)
	b.Screenshot("3-reader-gone")
	n, err := peertest.Eval[int](b, `Number(document.body.dataset.polls || 0)`)
	last, _ := peertest.Eval[string](b, `document.body.dataset.pollMs || ""`)
	open := time.Since(opened)
	t.Logf("page refreshed %d times in %v, the last refresh took %s ms", n, open.Round(time.Millisecond), last)
	// Every second plus the refresh itself; half that rate is a page that stalls.
	if want := int(open / (2 * time.Second)); err != nil || n < want {
		t.Errorf("page refreshed %d times in %v (%v), want at least %d (every second)", n, open, err, want)
	}
}

// pageLink is a JavaScript expression: "HEALTH STROKE" of the relay arc from → to on leg, ""
// when the picture has no such arc.
func pageLink(from, to, leg string) string {
	return fmt.Sprintf(`(() => { const p = document.querySelector('#mesh path.link[data-from=%q][data-to=%q][data-leg=%q]'); return p ? p.dataset.health + " " + getComputedStyle(p).stroke : ""; })()`, from, to, leg)
}

// TestStatusPageColoursLossyLeg: on a 2022-7 relay between node-a and node-b whose leg A loses
// 10 % of its packets (nftables on the link), the page draws leg a red and leg b green, from
// the legs' own loss counts that the nodes report to the control.
func TestStatusPageColoursLossyLeg(t *testing.T) {
	peertest.RequireChromium(t)
	peertest.Require(t, "nft")
	c := newClusterOpts(t, clusterOpts{liveLive: []string{"node-a", "node-b"}, relayLiveLive: "B", nodeTimeout: llNodeTimeout, api: true})
	loss := newLegLoss(t, c)
	loss.set(legA, "numgen random mod 10 0")
	ff := c.p2.Run(context.Background(), t, "ffmpeg", playFFmpegArgs("udp", c.url, 60)...)
	b := peertest.NewBrowserOn(t, c.ctl)
	if err := b.Navigate("http://127.0.0.1:9997/"); err != nil {
		t.Fatal(err)
	}
	arcA, arcB := pageLink("node-a", "node-b", "a"), pageLink("node-a", "node-b", "b")
	if err := b.WaitJS(arcA+` === "bad `+pageRed+`" && `+arcB+` === "good `+pageGreen+`"`, 30*time.Second); err != nil {
		b.Screenshot("failed")
		a, _ := peertest.Eval[string](b, arcA)
		bb, _ := peertest.Eval[string](b, arcB)
		t.Fatalf("legs drawn %q and %q, want leg a bad (red) and leg b good (green): %v\nffmpeg: %s", a, bb, err, ff.Tail(5))
	}
	ratio, _ := peertest.Eval[string](b, `Array.from(document.querySelectorAll('#relays tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent).join(' ')).join(' | ')`)
	t.Logf("relays table: %s (nft dropped %d on leg A)", ratio, loss.dropped(legA))
	b.Screenshot("lossy-leg-a")
}
