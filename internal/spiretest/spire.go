//go:build linux

package spiretest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

const (
	// BinEnv names the directory holding spire-server and spire-agent.
	BinEnv = "MESHGW_SPIRE_BIN"
	// RequireEnv, set to "1", makes a missing BinEnv a failure instead of a skip.
	RequireEnv = "MESHGW_REQUIRE_SPIRE"
	// Timeout bounds the SPIRE bring-up (server start, agent attestation); on
	// a 2-core machine it takes a few seconds. Tests may use it to bound the
	// wait for the first SVIDs too.
	Timeout = 2 * time.Minute
)

// Start runs a SPIRE server for trust domain td and an agent attested to it
// with a join token, registers each of ids (full SPIFFE IDs in td) for this
// process's uid, and returns the agent's Workload API address
// ("unix:///..."), for SPIFFE_ENDPOINT_SOCKET. The agent may still be
// attesting when Start returns: a Workload API client waits for its SVIDs.
// Both daemons are killed and their files removed when the test ends; their
// output is logged if it failed.
func Start(t testing.TB, td string, ids ...string) (socket string) {
	t.Helper()
	server, agent := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
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
	port := peertest.FreePort(t)
	serverConf := filepath.Join(dir, "server.conf")
	writeFile(t, serverConf, fmt.Sprintf(serverConfig, port, serverSock, td,
		filepath.Join(dir, "server-data"), filepath.Join(dir, "server-data", "datastore.sqlite3")))
	agentConf := filepath.Join(dir, "agent.conf")
	writeFile(t, agentConf, fmt.Sprintf(agentConfig, port, agentSock, td, filepath.Join(dir, "agent-data")))

	startDaemon(t, server, "run", "-config", serverConf)
	// The server has no readiness signal but its healthcheck command; retry
	// it until it answers or ctx ends.
	for {
		if _, err := spireCmd(ctx, server, "healthcheck", "-socketPath", serverSock); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("spire-server did not become healthy within %v", Timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Not under /spire/: SPIRE reserves that path for the IDs it mints itself.
	agentID := "spiffe://" + td + "/host/spiretest"
	out, err := spireCmd(ctx, server, "token", "generate", "-socketPath", serverSock, "-spiffeID", agentID, "-ttl", "600")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Token: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no token in %q", out)
	}
	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	for _, id := range ids {
		if _, err := spireCmd(ctx, server, "entry", "create", "-socketPath", serverSock,
			"-parentID", agentID, "-spiffeID", id, "-selector", uid); err != nil {
			t.Fatal(err)
		}
	}
	startDaemon(t, agent, "run", "-config", agentConf, "-joinToken", m[1])
	return "unix://" + agentSock
}

// binaries returns the paths of spire-server and spire-agent, or skips (or
// fails, under RequireEnv=1) the test when BinEnv is unset.
func binaries(t testing.TB) (server, agent string) {
	t.Helper()
	bin := os.Getenv(BinEnv)
	if bin == "" {
		msg := BinEnv + " is not set; build SPIRE v1.13.0 with scripts/spire.sh and run " +
			BinEnv + "=$(scripts/spire.sh) go test -run SPIRE ./..."
		if os.Getenv(RequireEnv) == "1" {
			t.Fatal(msg + " (" + RequireEnv + "=1)")
		}
		t.Skip(msg)
	}
	server, agent = filepath.Join(bin, "spire-server"), filepath.Join(bin, "spire-agent")
	for _, b := range []string{server, agent} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("%s=%s: %v", BinEnv, bin, err)
		}
	}
	return server, agent
}

// spireCmd runs a SPIRE CLI command and returns its output.
func spireCmd(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args[:2], " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// startDaemon runs a SPIRE daemon for the rest of the test (peertest.Start
// kills it at the end and logs its output if the test failed). The kernel
// kills it too if the test binary dies first.
func startDaemon(t testing.TB, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	peertest.Start(t, cmd)
}

// CloseAtEnd closes c (a Workload API client, say) when the test ends, before
// the SPIRE daemons of an earlier Start stop, and fails the test if Close
// does; what names c in the message.
func CloseAtEnd(t testing.TB, what string, c io.Closer) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close %s: %v", what, err)
		}
	})
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serverConfig takes the port, the socket path, the trust domain, the data
// directory and the datastore path.
const serverConfig = `
server {
	bind_address = "127.0.0.1"
	bind_port = "%d"
	socket_path = %q
	trust_domain = %q
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
`

// agentConfig takes the server's port, the Workload API socket path, the
// trust domain and the data directory.
const agentConfig = `
agent {
	server_address = "127.0.0.1"
	server_port = "%d"
	socket_path = %q
	trust_domain = %q
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
`
