package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/meshgw/meshgw/gateway/cluster"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/identity"
	"github.com/meshgw/meshgw/gateway/node"
	"github.com/meshgw/meshgw/gateway/ops"
	"github.com/meshgw/meshgw/rtp"
)

// NodeProcess is a standalone node (`meshgw node`): its data plane and the agent that keeps it
// attached to the control. Its flows outlive the control: while detached it keeps forwarding and
// redials.
type NodeProcess struct {
	Node  *node.Local
	agent *cluster.Agent
	ident *identity.Source
	log   *slog.Logger
	wg    sync.WaitGroup
	// ops is the api: listener (opsserver.go), nil without; cfg, caps and started are what it
	// reports.
	ops     *ops.Server
	cfg     config.Node
	caps    []string
	started time.Time
}

// nodeEvents forwards the node's source reports to the agent, which is built after the node.
type nodeEvents struct {
	mu sync.Mutex
	to node.Events
}

func (e *nodeEvents) get() node.Events {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.to
}

func (e *nodeEvents) SourceReady(stream string, sdp []byte, tracks []rtp.Track, replaced bool) {
	if to := e.get(); to != nil {
		to.SourceReady(stream, sdp, tracks, replaced)
	}
}

func (e *nodeEvents) SourceDown(stream string, err error) {
	if to := e.get(); to != nil {
		to.SourceDown(stream, err)
	}
}

// OpenNode starts a standalone node from a node config (node.control set). It refuses to start
// without a SPIFFE identity or a data address.
func OpenNode(ctx context.Context, cfg *config.Config, log *slog.Logger) (*NodeProcess, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nc := cfg.Node
	if !nc.IsNodeOnly() {
		return nil, errors.New("this config has no node.control: a node needs the control's address (meshgw run or meshgw control serve route configs)")
	}
	if !nc.DataAddress.IsValid() {
		return nil, errors.New("node.data_address (or -data-address) is required: it is where players and other nodes reach this node's RTP ports")
	}
	src, td, err := openIdentity(ctx, cfg, "node", log)
	if err != nil {
		return nil, err
	}
	if want, err := identity.NodeID(td, nc.Name); err == nil && src.ID() != want {
		src.Close()
		return nil, fmt.Errorf("node %q holds the identity %s, want %s", nc.Name, src.ID(), want)
	}
	ev := &nodeEvents{}
	// Bound to the data address, so relayed packets leave from the address other nodes expect
	// them from (they demultiplex relays by source address).
	n, err := node.NewLocal(node.LocalConfig{
		Name:      nc.Name,
		UDP:       udpConfig(cfg, nc.DataAddress.String(), log),
		Advertise: nc.DataAddress,
		LiveLive:  liveLiveUDPConfig(cfg, log),
		Events:    ev,
		Logger:    log,
	})
	if err != nil {
		src.Close()
		return nil, err
	}
	hello := cluster.Hello{Name: nc.Name, DataAddr: nc.DataAddress, RTPPort: n.UDP().RTPPort(), RTCPPort: n.UDP().RTCPPort(),
		ClientNetworks: nc.ClientNetworks, Capabilities: []string{"udp", "relay", "demo", "pull"}}
	if p := n.LiveLiveUDP(); p != nil {
		hello.LiveLiveAddr, hello.LiveLiveRTPPort, hello.LiveLiveRTCPPort = nc.LiveLiveAddress, p.RTPPort(), p.RTCPPort()
		hello.Capabilities = append(hello.Capabilities, "live-live")
	}
	agent, err := cluster.NewAgent(cluster.AgentConfig{
		Control: nc.Control,
		TLS:     identity.ClientTLS(src, identity.AuthorizeControl(td)),
		Node:    n,
		Hello:   hello,
		Logger:  log,
	})
	if err != nil {
		n.Close()
		src.Close()
		return nil, err
	}
	ev.mu.Lock()
	ev.to = agent.Events()
	ev.mu.Unlock()
	p := &NodeProcess{Node: n, agent: agent, ident: src, log: log, cfg: nc, caps: hello.Capabilities, started: time.Now()}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := agent.Run(context.Background()); err != nil && !errors.Is(err, cluster.ErrAgentClosed) {
			log.Error("node agent stopped", "err", err)
		}
	}()
	if p.ops, err = openOps(cfg, p, log); err != nil {
		p.Close()
		return nil, err
	}
	log.Info("meshgw node running", "node", nc.Name, "control", nc.Control, "data", nc.DataAddress,
		"rtp_port", n.UDP().RTPPort(), "client_networks", nc.ClientNetworks, "spiffe_id", src.ID().String())
	return p, nil
}

// Close detaches from the control and stops the node's data plane.
func (p *NodeProcess) Close() error {
	if p.ops != nil {
		p.ops.Close()
	}
	err := p.agent.Close()
	p.wg.Wait()
	if nerr := p.Node.Close(); err == nil {
		err = nerr
	}
	p.ident.Close()
	if errors.Is(err, cluster.ErrAgentClosed) {
		err = nil
	}
	return err
}
