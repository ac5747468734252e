package gateway

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshgw/meshgw/gateway/cluster"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/rtp"
	"github.com/meshgw/meshgw/rtsp"
)

// recNode is a node that records what the control asks of it and carries nothing.
type recNode struct {
	name string

	mu      sync.Mutex
	applied []node.Flow
	deleted []string
}

func (n *recNode) Name() string { return n.name }

func (n *recNode) Apply(_ context.Context, f node.Flow) (node.FlowStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.applied = append(n.applied, f)
	return node.FlowStatus{}, nil
}

func (n *recNode) Delete(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.deleted = append(n.deleted, id)
	return nil
}

func (n *recNode) Stats(string) (node.FlowStats, error) { return node.FlowStats{}, node.ErrNotFound }

func (n *recNode) Hub(string, int) (*rtp.Hub, error) { return nil, node.ErrNotFound }

// calls is how many flows the node was asked to apply and to delete.
func (n *recNode) calls() (applied, deleted int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.applied), len(n.deleted)
}

// graceControl is a control over a recording local node with one always-on demo route pinned to
// node-a, as after a restart (not started yet).
func graceControl(t *testing.T) (*Control, *recNode) {
	t.Helper()
	cfg, err := config.Parse("grace.yaml", []byte(`node: {name: control}
rtsp: {listen: "127.0.0.1:0"}
routes:
  demo: {source: demo, node: node-a, on_demand_start_timeout: 300ms}
`))
	if err != nil {
		t.Fatal(err)
	}
	local := &recNode{name: "control"}
	c := New(cfg, local, nil)
	t.Cleanup(c.Close)
	return c, local
}

type openResult struct {
	rs  rtsp.ReadStream
	err error
}

func openAsync(c *Control) <-chan openResult {
	ch := make(chan openResult, 1)
	go func() {
		rs, err := c.OpenRead(context.Background(), rtsp.ConnInfo{Remote: netip.MustParseAddrPort("10.0.0.9:4000")}, "demo")
		ch <- openResult{rs, err}
	}()
	return ch
}

// A reader arriving during the startup grace waits for the adoption and is then served from the
// adopted stream: no source is started and no flow of the node's is deleted.
func TestReadDuringGraceWaitsForAdoption(t *testing.T) {
	c, local := graceControl(t)
	c.holdRequests(time.Second)
	res := openAsync(c)
	time.Sleep(100 * time.Millisecond)
	select {
	case r := <-res:
		t.Fatalf("OpenRead returned during the grace, before the nodes reported: %v", r.err)
	default:
	}
	if a, d := local.calls(); a != 0 || d != 0 {
		t.Fatalf("during the grace the local node was asked to apply %d and delete %d flows, want none", a, d)
	}

	remote := &recNode{name: "node-a"}
	src := node.Flow{ID: "src-old", Version: 1, Stream: "st-old", Spec: node.DemoSource{}, Meta: map[string]string{metaRole: roleSource, metaRoute: "demo"}}
	c.NodeUp("node-a", remote, NodeInfo{Data: netip.MustParseAddr("10.0.0.2"), RTPPort: 8000, RTCPPort: 8001},
		[]node.Flow{src}, []cluster.SourceState{{Stream: "st-old", Up: true, SDP: []byte("v=0\r\n"),
			Tracks: []rtp.Track{{Media: "video", PayloadType: 96, ClockRate: 90000}}}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		s := c.streams.table["demo"]
		adopted := s != nil && s.sourceFlow == src.ID
		c.mu.Unlock()
		if adopted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node-a's source flow was not adopted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.FinishAdoption(context.Background()); err != nil {
		t.Fatal(err)
	}
	var r openResult
	select {
	case r = <-res:
	case <-time.After(5 * time.Second):
		t.Fatal("OpenRead still waiting after the adoption finished")
	}
	if r.err != nil {
		t.Fatalf("OpenRead after the adoption: %v", r.err)
	}
	defer r.rs.Close()
	if id := r.rs.(*reader).s.id; id != "st-old" {
		t.Errorf("the reader got stream %s, want the adopted st-old", id)
	}
	for _, n := range []*recNode{local, remote} {
		if a, d := n.calls(); a != 0 || d != 0 {
			t.Errorf("node %s was asked to apply %d and delete %d flows, want none (adoption as if no request had come)", n.name, a, d)
		}
	}
}

// With no node reporting and no adoption, the wait ends at the grace plus the route's
// on_demand_start_timeout with 503 and a Retry-After, having started nothing.
func TestReadDuringGraceGivesUp(t *testing.T) {
	c, local := graceControl(t)
	c.holdRequests(100 * time.Millisecond)
	start := time.Now()
	r := <-openAsync(c)
	took := time.Since(start)
	var e *rtsp.Error
	if !errors.As(r.err, &e) || e.Status != rtsp.StatusServiceUnavailable || e.RetryAfter <= 0 {
		t.Fatalf("OpenRead = %v, want 503 with a Retry-After", r.err)
	}
	if took < 400*time.Millisecond {
		t.Errorf("gave up after %v, want the grace plus on_demand_start_timeout (400ms)", took)
	}
	if a, _ := local.calls(); a != 0 {
		t.Errorf("%d flows applied while waiting, want none", a)
	}
}

// Without a startup grace (meshgw run) requests do not wait: the source starts at once.
func TestReadWithoutGraceDoesNotWait(t *testing.T) {
	c, local := graceControl(t)
	res := openAsync(c)
	deadline := time.Now().Add(200 * time.Millisecond)
	for {
		if a, _ := local.calls(); a > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no source started within 200ms of a request without a grace")
		}
		time.Sleep(5 * time.Millisecond)
	}
	<-res // the recording node never reports the source: OpenRead times out
}
