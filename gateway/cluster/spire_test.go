//go:build linux

package cluster

import (
	"context"
	"crypto/x509"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshgw/meshgw/gateway/identity"
	"github.com/meshgw/meshgw/internal/spiretest"
)

// TestAttachWithSPIRE runs the control↔node API on identities issued by a real SPIRE server and
// agent (v1.13.0) through the Workload API: node n1 attaches and is steered, and a node with
// n2's SVID that claims to be n1 is turned away.
//
//	MESHGW_SPIRE_BIN=$(scripts/spire.sh) go test -run SPIRE -v ./gateway/cluster/
func TestAttachWithSPIRE(t *testing.T) {
	const (
		controlID = "spiffe://mesh.test/meshgw/control"
		n1ID      = "spiffe://mesh.test/meshgw/node/n1"
		n2ID      = "spiffe://mesh.test/meshgw/node/n2"
	)
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", spiretest.Start(t, td, controlID, n1ID, n2ID))
	ctx, cancel := context.WithTimeout(context.Background(), spiretest.Timeout)
	defer cancel()
	var logs logBuffer
	open := func(id string) *identity.Source {
		t.Helper()
		src, err := identity.Open(ctx, identity.Config{TrustDomain: td, ID: id}, logs.logger())
		if err != nil {
			t.Fatalf("Open %s: %v\nlog:\n%s", id, err, logs.String())
		}
		spiretest.CloseAtEnd(t, id, src)
		return src
	}
	ctlSrc, n1Src, n2Src := open(controlID), open(n1ID), open(n2ID)
	mesh := spiffeid.RequireTrustDomainFromString(td)

	// The server's TLS config records the client certificates it accepted.
	var (
		mu       sync.Mutex
		accepted []*big.Int
	)
	serverTLS := identity.ServerTLS(ctlSrc, identity.AuthorizeAnyNode(mesh))
	verify := serverTLS.VerifyPeerCertificate
	serverTLS.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		err := verify(raw, chains)
		if err == nil {
			leaf, perr := x509.ParseCertificate(raw[0])
			if perr != nil {
				return perr
			}
			mu.Lock()
			accepted = append(accepted, leaf.SerialNumber)
			mu.Unlock()
		}
		return err
	}
	h := newRecHandler()
	_, addr, _ := serve(t, "", ServerConfig{TLS: serverTLS, Handler: h, Logger: logs.logger()})

	lt, setup := realLocal(t, "n1")
	runAgent(t, identity.ClientTLS(n1Src, identity.AuthorizeControl(mesh)), "n1", addr, lt, nil, setup)
	up := h.next(t, "up")
	if up.node.Name() != "n1" || up.hello.Name != "n1" {
		t.Fatalf("NodeUp for %q (hello %q)", up.node.Name(), up.hello.Name)
	}
	if _, err := up.node.Apply(ctx, demoFlow); err != nil {
		t.Fatal(err)
	}
	if ready := h.next(t, "ready"); ready.node != up.node || ready.stream != "s" || len(ready.tracks) == 0 {
		t.Errorf("SourceReady from %s for %q, tracks %v", ready.node.Name(), ready.stream, ready.tracks)
	}
	// SPIRE, not a minted CA, issued what the control accepted.
	svid, err := n1Src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	seen := append([]*big.Int(nil), accepted...)
	mu.Unlock()
	if len(seen) != 1 || seen[0].Cmp(svid.Certificates[0].SerialNumber) != 0 {
		t.Errorf("control accepted serials %x, n1's Workload API SVID is %x", seen, svid.Certificates[0].SerialNumber)
	}
	t.Logf("n1 SVID from SPIRE: serial %x, issuer %q", svid.Certificates[0].SerialNumber, svid.Certificates[0].Issuer)

	// n2's SVID claiming to be n1: the TLS handshake passes (n2 is a node), the Hello does not.
	runAgent(t, identity.ClientTLS(n2Src, identity.AuthorizeControl(mesh)), "n1", addr, newFakeTarget("n1"), nil)
	logs.waitLog(t, "claimed name does not match", "presented_id="+n2ID, "claimed_name=n1")
	h.none(t, 300*time.Millisecond)
	if !up.node.Alive() {
		t.Errorf("n1 is down after the impostor was refused")
	}
}
