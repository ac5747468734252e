//go:build linux

package identity

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/spiretest"
)

// TestWorkloadAPISPIRE runs a real SPIRE server and agent on loopback, has
// them issue the control and node IDs to this uid, and does the mTLS
// handshake with both Sources opened through the Workload API.
//
//	MESHGW_SPIRE_BIN=$(scripts/spire.sh) go test -run SPIRE -v ./gateway/identity/
func TestWorkloadAPISPIRE(t *testing.T) {
	socket := spiretest.Start(t, "mesh.test", "spiffe://mesh.test/meshgw/control", "spiffe://mesh.test/meshgw/node/n1")
	ctx, cancel := context.WithTimeout(context.Background(), spiretest.Timeout)
	defer cancel()

	// Open waits until the agent has attested and pushes the wanted SVID.
	// The static files configured alongside must be ignored.
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", socket)
	static := mintDir(t, "mesh.test", "n1")
	var logs logBuffer
	open := func(id string) *Source {
		cfg := fileConfig(static, "mesh.test", "n1")
		cfg.ID = id
		src, err := Open(ctx, cfg, newLog(&logs))
		if err != nil {
			t.Fatalf("Open %s: %v\nlog:\n%s", id, err, logs.String())
		}
		spiretest.CloseAtEnd(t, id, src)
		return src
	}
	control := open("spiffe://mesh.test/meshgw/control")
	n1 := open("spiffe://mesh.test/meshgw/node/n1")
	if control.ID().String() != "spiffe://mesh.test/meshgw/control" || n1.ID().String() != "spiffe://mesh.test/meshgw/node/n1" {
		t.Fatalf("IDs: control %s, node %s", control.ID(), n1.ID())
	}
	if control.TrustDomain() != meshTD {
		t.Errorf("trust domain %s", control.TrustDomain())
	}

	srv, cli := handshake(t, ServerTLS(control, AuthorizeAnyNode(meshTD)), ClientTLS(n1, AuthorizeControl(meshTD)))
	if srv.err != nil || cli.err != nil {
		t.Fatalf("server %v, client %v", srv.err, cli.err)
	}
	if got := srv.peer.URIs[0].String(); got != "spiffe://mesh.test/meshgw/node/n1" {
		t.Errorf("control saw %s", got)
	}
	if got := cli.peer.URIs[0].String(); got != "spiffe://mesh.test/meshgw/control" {
		t.Errorf("node saw %s", got)
	}
	// SPIRE, not the minted CA on disk, issued what was presented.
	if svid, _ := n1.GetX509SVID(); svid.Certificates[0].SerialNumber.Cmp(srv.peer.SerialNumber) != 0 {
		t.Errorf("node presented serial %x, its Workload API SVID is %x", srv.peer.SerialNumber, svid.Certificates[0].SerialNumber)
	}
	t.Logf("node SVID from SPIRE: serial %x, issuer %q, expires %v", srv.peer.SerialNumber, srv.peer.Issuer, srv.peer.NotAfter)

	// The same refusal as with files: a node posing as the control.
	srv, cli = handshake(t, ServerTLS(n1, AuthorizeAnyNode(meshTD)), ClientTLS(n1, AuthorizeControl(meshTD)))
	wantRejected(t, "node", cli.err, "spiffe://mesh.test/meshgw/node/n1")
	if srv.err == nil {
		t.Errorf("server of a refused handshake saw success")
	}
	// An ID the agent does not issue to this uid: Open waits, then says
	// what it was offered.
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	_, err := Open(short, Config{ID: "spiffe://mesh.test/meshgw/node/n9"}, nil)
	if err == nil || !strings.Contains(err.Error(), "spiffe://mesh.test/meshgw/node/n1") || !strings.Contains(err.Error(), "not spiffe://mesh.test/meshgw/node/n9") {
		t.Errorf("Open of an unissued ID: %v", err)
	}
	if !strings.Contains(logs.String(), "identity files ignored") {
		t.Errorf("ignored static files not logged:\n%s", logs.String())
	}
}
