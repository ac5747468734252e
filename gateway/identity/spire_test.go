//go:build linux

package identity

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// spireTimeout bounds the whole SPIRE bring-up (server start, agent
// attestation, first SVIDs); on this 2-core machine it takes a few seconds.
const spireTimeout = 2 * time.Minute

// TestWorkloadAPISPIRE runs a real SPIRE server and agent on loopback, has
// them issue the control and node IDs to this uid, and does the mTLS
// handshake with both Sources opened through the Workload API.
//
//	MESHGW_SPIRE_BIN=$(scripts/spire.sh) go test -run SPIRE -v ./gateway/identity/
func TestWorkloadAPISPIRE(t *testing.T) {
	bin := os.Getenv("MESHGW_SPIRE_BIN")
	if bin == "" {
		msg := "MESHGW_SPIRE_BIN is not set; build SPIRE with scripts/spire.sh and run MESHGW_SPIRE_BIN=$(scripts/spire.sh) go test ./gateway/identity/"
		if os.Getenv("MESHGW_REQUIRE_SPIRE") == "1" {
			t.Fatal(msg + " (MESHGW_REQUIRE_SPIRE=1)")
		}
		t.Skip(msg)
	}
	server, agent := filepath.Join(bin, "spire-server"), filepath.Join(bin, "spire-agent")
	for _, b := range []string{server, agent} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("MESHGW_SPIRE_BIN=%s: %v", bin, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), spireTimeout)
	defer cancel()

	// Unix socket paths are limited to 107 bytes; t.TempDir's names, built
	// from the test name, come close, so use a short directory.
	dir, err := os.MkdirTemp("", "meshgw-spire-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	serverSock := filepath.Join(dir, "server.sock")
	agentSock := filepath.Join(dir, "agent", "api.sock")
	if err := os.MkdirAll(filepath.Dir(agentSock), 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	writeFile(t, filepath.Join(dir, "server.conf"), fmt.Sprintf(`
server {
	bind_address = "127.0.0.1"
	bind_port = "%d"
	socket_path = %q
	trust_domain = "mesh.test"
	data_dir = %q
	log_level = "WARN"
}
plugins {
	DataStore "sql" {
		plugin_data {
			database_type = "sqlite3"
			connection_string = %q
		}
	}
	KeyManager "memory" {
		plugin_data {}
	}
	NodeAttestor "join_token" {
		plugin_data {}
	}
}
`, port, serverSock, filepath.Join(dir, "server-data"), filepath.Join(dir, "server-data", "datastore.sqlite3")))
	writeFile(t, filepath.Join(dir, "agent.conf"), fmt.Sprintf(`
agent {
	server_address = "127.0.0.1"
	server_port = "%d"
	socket_path = %q
	trust_domain = "mesh.test"
	data_dir = %q
	log_level = "WARN"
	# test only: the agent takes the server's bundle on first contact
	insecure_bootstrap = true
}
plugins {
	KeyManager "memory" {
		plugin_data {}
	}
	NodeAttestor "join_token" {
		plugin_data {}
	}
	WorkloadAttestor "unix" {
		plugin_data {}
	}
}
`, port, agentSock, filepath.Join(dir, "agent-data")))

	startProcess(t, dir, "spire-server", server, "run", "-config", filepath.Join(dir, "server.conf"))
	// The server has no readiness signal but its healthcheck command; retry
	// it until it answers or ctx ends.
	for {
		if _, err := spireCmd(ctx, server, "healthcheck", "-socketPath", serverSock); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("spire-server did not become healthy within %v", spireTimeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Not under /spire/: SPIRE reserves that path for the IDs it mints itself.
	const agentID = "spiffe://mesh.test/host/n1"
	out, err := spireCmd(ctx, server, "token", "generate", "-socketPath", serverSock, "-spiffeID", agentID, "-ttl", "600")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no token in %q", out)
	}
	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	for _, id := range []string{"spiffe://mesh.test/meshgw/control", "spiffe://mesh.test/meshgw/node/n1"} {
		if _, err := spireCmd(ctx, server, "entry", "create", "-socketPath", serverSock,
			"-parentID", agentID, "-spiffeID", id, "-selector", uid); err != nil {
			t.Fatal(err)
		}
	}
	startProcess(t, dir, "spire-agent", agent, "run", "-config", filepath.Join(dir, "agent.conf"), "-joinToken", m[1])

	// Open waits until the agent has attested and pushes the wanted SVID.
	// The static files configured alongside must be ignored.
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "unix://"+agentSock)
	static := mintDir(t, "mesh.test", "n1")
	var logs logBuffer
	open := func(id string) *Source {
		cfg := fileConfig(static, "mesh.test", "n1")
		cfg.ID = id
		src, err := Open(ctx, cfg, newLog(&logs))
		if err != nil {
			t.Fatalf("Open %s: %v\nlog:\n%s", id, err, logs.String())
		}
		t.Cleanup(func() {
			if err := src.Close(); err != nil {
				t.Errorf("Close %s: %v", id, err)
			}
		})
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
	_, err = Open(short, Config{ID: "spiffe://mesh.test/meshgw/node/n9"}, nil)
	if err == nil || !strings.Contains(err.Error(), "spiffe://mesh.test/meshgw/node/n1") || !strings.Contains(err.Error(), "not spiffe://mesh.test/meshgw/node/n9") {
		t.Errorf("Open of an unissued ID: %v", err)
	}
	if !strings.Contains(logs.String(), "identity files ignored") {
		t.Errorf("ignored static files not logged:\n%s", logs.String())
	}
}

// spireCmd runs a SPIRE CLI command and returns its output.
func spireCmd(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args[:2], " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// startProcess runs a SPIRE daemon for the rest of the test, logging to
// dir/name.log, and stops it (SIGTERM, then SIGKILL) when the test ends. The
// kernel kills it too if the test binary dies first.
func startProcess(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", name, b)
		}
	})
}

// freePort returns a loopback TCP port that was free a moment ago, for the
// SPIRE server, which cannot report the port it bound.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
