package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshgw/meshgw/internal/peertest"
)

// ioDeadline only bounds a test that would otherwise hang; no assertion
// depends on it.
const ioDeadline = 20 * time.Second

// fileConfig is the static Config for base.pem/base.key in dir.
func fileConfig(dir, td, base string) Config {
	return Config{
		TrustDomain: td,
		CertFile:    filepath.Join(dir, base+".pem"),
		KeyFile:     filepath.Join(dir, base+".key"),
		BundleFile:  filepath.Join(dir, "ca.pem"),
	}
}

// openFile opens the static identity base from dir and closes it with the
// test. The Workload API must not win, so the variable is cleared.
func openFile(t *testing.T, dir, td, base string, log *slog.Logger) *Source {
	t.Helper()
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	src, err := Open(context.Background(), fileConfig(dir, td, base), log)
	if err != nil {
		t.Fatalf("Open %s/%s: %v", dir, base, err)
	}
	t.Cleanup(func() {
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return src
}

// result is one side of a handshake.
type result struct {
	err  error
	peer *x509.Certificate // the other side's leaf, when the handshake passed
}

// handshake connects a client with cc to a server with sc over loopback TCP
// and reports what each side saw. With TLS 1.3 the client finishes its half
// before the server has judged the client certificate, so the server sends one
// byte after a successful handshake and the client's verdict includes reading
// it: a refused client then sees the server's alert instead of a false success.
func handshake(t *testing.T, sc, cc *tls.Config) (server, client result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			server.err = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(ioDeadline))
		tc := tls.Server(c, sc)
		if server.err = tc.Handshake(); server.err != nil {
			return
		}
		server.peer = tc.ConnectionState().PeerCertificates[0]
		_, server.err = tc.Write([]byte{1})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioDeadline))
	tc := tls.Client(c, cc)
	if client.err = tc.Handshake(); client.err == nil {
		client.peer = tc.ConnectionState().PeerCertificates[0]
		var b [1]byte
		if _, err := tc.Read(b[:]); err != nil {
			client.err, client.peer = err, nil
		}
	}
	_ = tc.Close()
	wg.Wait()
	return server, client
}

type logBuffer = peertest.LogBuffer

func newLog(b *logBuffer) *slog.Logger { return b.Logger() }

var meshTD = spiffeid.RequireTrustDomainFromString("mesh.test")

// issue signs an SVID for an arbitrary ID with the CA in dir, for peers that
// Mint refuses to create.
func issue(t *testing.T, dir, id, base string) {
	t.Helper()
	sid := spiffeid.RequireFromString(id)
	ca, key, err := loadCA(dir, sid.TrustDomain())
	if err != nil {
		t.Fatal(err)
	}
	leaf, lkey, err := newLeaf(ca, key, sid, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writePair(dir, base, leaf, lkey, nil); err != nil {
		t.Fatal(err)
	}
}

// wantRejected checks that err is a refusal naming the presented ID.
func wantRejected(t *testing.T, side string, err error, presented string) {
	t.Helper()
	var pe *PeerError
	switch {
	case err == nil:
		t.Errorf("%s accepted %s", side, presented)
	case !errors.As(err, &pe) || pe.ID != presented:
		t.Errorf("%s: error %v (%T) is not a PeerError for %s", side, err, err, presented)
	case !strings.Contains(err.Error(), presented):
		t.Errorf("%s: error %q does not name %s", side, err, presented)
	default:
		t.Logf("%s refused: %v", side, err)
	}
}

func TestMTLS(t *testing.T) {
	dir := mintDir(t, "mesh.test", "n1", "n2")
	issue(t, dir, "spiffe://mesh.test/meshgw/other", "other")
	foreign := mintDir(t, "other.test", "n1")

	control := openFile(t, dir, "mesh.test", "control", nil)
	n1 := openFile(t, dir, "mesh.test", "n1", nil)
	n2 := openFile(t, dir, "mesh.test", "n2", nil)
	other := openFile(t, dir, "mesh.test", "other", nil)
	alien := openFile(t, foreign, "other.test", "n1", nil)
	controlServer := ServerTLS(control, AuthorizeAnyNode(control.TrustDomain()))

	t.Run("control accepts node", func(t *testing.T) {
		srv, cli := handshake(t, controlServer, ClientTLS(n1, AuthorizeControl(n1.TrustDomain())))
		if srv.err != nil || cli.err != nil {
			t.Fatalf("server %v, client %v", srv.err, cli.err)
		}
		if got := srv.peer.URIs[0].String(); got != "spiffe://mesh.test/meshgw/node/n1" {
			t.Errorf("server saw %s", got)
		}
		if got := cli.peer.URIs[0].String(); got != "spiffe://mesh.test/meshgw/control" {
			t.Errorf("client saw %s", got)
		}
	})
	t.Run("control rejects non-node ID", func(t *testing.T) {
		srv, cli := handshake(t, controlServer, ClientTLS(other, AuthorizeControl(meshTD)))
		wantRejected(t, "control", srv.err, "spiffe://mesh.test/meshgw/other")
		if cli.err == nil {
			t.Errorf("client of a refused handshake saw success")
		}
	})
	t.Run("control rejects node of another trust domain", func(t *testing.T) {
		// The alien cannot verify the control (a TLS 1.3 client checks the
		// server before it sends its own certificate), so it skips that
		// check here and only the control's decision is under test.
		alienClient := ClientTLS(alien, tlsconfig.AuthorizeAny())
		alienClient.VerifyPeerCertificate = nil
		srv, _ := handshake(t, controlServer, alienClient)
		wantRejected(t, "control", srv.err, "spiffe://other.test/meshgw/node/n1")
		if srv.err != nil && !strings.Contains(srv.err.Error(), `"other.test"`) {
			t.Errorf("error does not say the trust domain is unknown: %v", srv.err)
		}
	})
	t.Run("node rejects a node posing as control", func(t *testing.T) {
		fake := ServerTLS(n2, AuthorizeAnyNode(meshTD))
		srv, cli := handshake(t, fake, ClientTLS(n1, AuthorizeControl(meshTD)))
		wantRejected(t, "node", cli.err, "spiffe://mesh.test/meshgw/node/n2")
		if srv.err == nil {
			t.Errorf("server of a refused handshake saw success")
		}
	})
	t.Run("node rejects control of another trust domain", func(t *testing.T) {
		alienControl := openFile(t, foreign, "other.test", "control", nil)
		srv, cli := handshake(t, ServerTLS(alienControl, AuthorizeAnyNode(alienControl.TrustDomain())), ClientTLS(n1, AuthorizeControl(meshTD)))
		wantRejected(t, "node", cli.err, "spiffe://other.test/meshgw/control")
		if srv.err == nil {
			t.Errorf("server of a refused handshake saw success")
		}
	})
}

func TestRotation(t *testing.T) {
	dir := mintDir(t, "mesh.test", "n1")
	var logs logBuffer
	control := openFile(t, dir, "mesh.test", "control", nil)
	n1 := openFile(t, dir, "mesh.test", "n1", newLog(&logs))
	sc := ServerTLS(control, AuthorizeAnyNode(meshTD))
	cc := ClientTLS(n1, AuthorizeControl(meshTD))

	srv, cli := handshake(t, sc, cc)
	if srv.err != nil || cli.err != nil {
		t.Fatalf("server %v, client %v", srv.err, cli.err)
	}
	before := srv.peer.SerialNumber

	// A broken rewrite (new key, old cert) must not take the node down: it
	// keeps presenting the SVID it has and says so once.
	good, _ := os.ReadFile(filepath.Join(dir, "n1.key"))
	spare := mintDir(t, "mesh.test", "n1")
	bad, _ := os.ReadFile(filepath.Join(spare, "n1.key"))
	if err := os.WriteFile(filepath.Join(dir, "n1.key"), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		srv, cli = handshake(t, sc, cc)
		if srv.err != nil || cli.err != nil {
			t.Fatalf("with a mismatched key on disk: server %v, client %v", srv.err, cli.err)
		}
		if srv.peer.SerialNumber.Cmp(before) != 0 {
			t.Fatalf("serial changed to %x although the new files do not load", srv.peer.SerialNumber)
		}
	}
	if n := strings.Count(logs.String(), "did not reload"); n != 1 {
		t.Errorf("reload failure logged %d times, want once:\n%s", n, logs.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "n1.key"), good, 0o600); err != nil {
		t.Fatal(err)
	}

	// Re-minting rewrites control and n1 with new serials under the same CA.
	if _, err := Mint(dir, "mesh.test", "n1"); err != nil {
		t.Fatal(err)
	}
	srv, cli = handshake(t, sc, cc)
	if srv.err != nil || cli.err != nil {
		t.Fatalf("after rotation: server %v, client %v", srv.err, cli.err)
	}
	if srv.peer.SerialNumber.Cmp(before) == 0 {
		t.Errorf("node still presents serial %x after rotation", before)
	}
	if got := n1.ID().String(); got != "spiffe://mesh.test/meshgw/node/n1" {
		t.Errorf("ID after rotation = %s", got)
	}
	svid, err := n1.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.Certificates[0].SerialNumber.Cmp(srv.peer.SerialNumber) != 0 {
		t.Errorf("handshake serial %x is not the one on disk %x", srv.peer.SerialNumber, svid.Certificates[0].SerialNumber)
	}
	ctl, _ := control.GetX509SVID()
	if cli.peer.SerialNumber.Cmp(ctl.Certificates[0].SerialNumber) != 0 {
		t.Errorf("control presented %x, its files hold %x", cli.peer.SerialNumber, ctl.Certificates[0].SerialNumber)
	}
	if !strings.Contains(logs.String(), "identity files reloaded") {
		t.Errorf("rotation not logged:\n%s", logs.String())
	}
}

func TestOpenErrors(t *testing.T) {
	dir := mintDir(t, "mesh.test", "n1")
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	ctx := context.Background()
	if _, err := Open(ctx, Config{TrustDomain: "mesh.test"}, nil); !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "SPIFFE_ENDPOINT_SOCKET") {
		t.Errorf("nothing configured: %v", err)
	}
	cfg := fileConfig(dir, "mesh.test", "n1")
	cfg.KeyFile = ""
	if _, err := Open(ctx, cfg, nil); !errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "KeyFile not set") {
		t.Errorf("no key file: %v", err)
	}
	for name, c := range map[string]struct {
		cfg  Config
		want string
	}{
		"wrong trust domain": {fileConfig(dir, "other.test", "n1"), `not in trust domain "other.test"`},
		"wrong ID":           {withID(fileConfig(dir, "mesh.test", "n1"), "spiffe://mesh.test/meshgw/control"), "want spiffe://mesh.test/meshgw/control"},
		"ID outside domain":  {withID(fileConfig(dir, "mesh.test", "n1"), "spiffe://x.test/a"), `not in trust domain "mesh.test"`},
		"bad trust domain":   {fileConfig(dir, "Mesh", "n1"), `trust domain "Mesh"`},
		"missing file":       {fileConfig(dir, "mesh.test", "n9"), "n9.pem"},
		"foreign bundle":     {withBundle(fileConfig(dir, "mesh.test", "n1"), filepath.Join(mintDir(t, "mesh.test"), "ca.pem")), "does not verify against bundle"},
	} {
		if _, err := Open(ctx, c.cfg, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Open = %v, want error containing %q", name, err, c.want)
		}
	}
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "http://nope")
	if _, err := Open(ctx, Config{}, nil); err == nil || !strings.Contains(err.Error(), "SPIFFE_ENDPOINT_SOCKET") {
		t.Errorf("bad Workload API address: %v", err)
	}
}

func withID(c Config, id string) Config { c.ID = id; return c }

func withBundle(c Config, path string) Config { c.BundleFile = path; return c }

func TestSourceClose(t *testing.T) {
	dir := mintDir(t, "mesh.test", "n1")
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "")
	src, err := Open(context.Background(), fileConfig(dir, "", "n1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if src.TrustDomain() != meshTD || src.ID().String() != "spiffe://mesh.test/meshgw/node/n1" {
		t.Errorf("trust domain %s, ID %s", src.TrustDomain(), src.ID())
	}
	if _, err := src.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.test")); err == nil {
		t.Errorf("bundle for a foreign trust domain")
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := src.GetX509SVID(); err == nil || !src.ID().IsZero() {
		t.Errorf("closed source still serves an SVID")
	}
}

// TestGRPCPeerNode runs a gRPC server behind the control's TLS config and
// reads the node name in an interceptor, both with plain credentials.NewTLS
// and with go-spiffe's grpccredentials.
func TestGRPCPeerNode(t *testing.T) {
	dir := mintDir(t, "mesh.test", "n1")
	control := openFile(t, dir, "mesh.test", "control", nil)
	n1 := openFile(t, dir, "mesh.test", "n1", nil)
	for name, creds := range map[string]credentials.TransportCredentials{
		"NewTLS":          credentials.NewTLS(ServerTLS(control, AuthorizeAnyNode(meshTD))),
		"grpccredentials": grpccredentials.MTLSServerCredentials(control, control, AuthorizeAnyNode(meshTD)),
	} {
		t.Run(name, func(t *testing.T) {
			got := make(chan string, 1)
			srv := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(
				func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
					node, err := PeerNode(ctx)
					if err != nil {
						node = "error: " + err.Error()
					}
					got <- node
					return h(ctx, req)
				}))
			healthpb.RegisterHealthServer(srv, health.NewServer())
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()
			defer func() {
				srv.Stop()
				if err := <-served; err != nil {
					t.Errorf("Serve: %v", err)
				}
			}()
			conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(
				credentials.NewTLS(ClientTLS(n1, AuthorizeControl(meshTD)))))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), ioDeadline)
			defer cancel()
			if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
			if node := <-got; node != "n1" {
				t.Errorf("PeerNode = %q, want n1", node)
			}
		})
	}
	if _, err := PeerNode(context.Background()); err == nil {
		t.Errorf("PeerNode without a peer succeeded")
	}
}
