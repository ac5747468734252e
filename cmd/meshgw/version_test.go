package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshgw/meshgw/internal/peertest"
)

// TestVersionFromCheckout: a binary built with `go build` in a git checkout reports the module's
// (pseudo-)version and the checkout's commit, not "devel". The test clones this repository's
// HEAD into a temporary directory and builds there with VCS stamping on (this machine's go env
// may switch it off).
func TestVersionFromCheckout(t *testing.T) {
	peertest.Require(t, "git", "go")
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("git", "clone", "--quiet", strings.TrimSpace(string(top)), dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v: %s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "meshgw")
	build := exec.Command("go", "build", "-o", bin, "./cmd/meshgw")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=true")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	v := strings.TrimSpace(string(out))
	t.Log(v)
	rev := strings.TrimSpace(string(head))
	if !strings.HasPrefix(v, "meshgw v") || strings.Contains(v, "devel") || !strings.Contains(v, "revision "+rev) || strings.Contains(v, "modified") {
		t.Errorf("version %q, want a module version and revision %s of a clean tree", v, rev)
	}
}
