package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// generated are the files gen.sh writes, committed next to meshgw.proto.
var generated = []string{"meshgw.pb.go", "meshgw_grpc.pb.go"}

// TestGeneratedUpToDate regenerates the code into a temporary directory and compares it with the
// committed files, so an edit of meshgw.proto without gen.sh (or with other tool versions) fails
// here rather than as a wire incompatibility. It needs the exact tools named in gen.sh.
func TestGeneratedUpToDate(t *testing.T) {
	want := map[string]string{
		"protoc":             "libprotoc 3.21.12",
		"protoc-gen-go":      "protoc-gen-go v1.36.12",
		"protoc-gen-go-grpc": "protoc-gen-go-grpc 1.5.1",
	}
	// CI installs the tools and sets MESHGW_REQUIRE_PEERS=1: there a missing tool fails.
	skip := t.Skipf
	if os.Getenv("MESHGW_REQUIRE_PEERS") == "1" {
		skip = t.Fatalf
	}
	for tool, version := range want {
		path, err := exec.LookPath(tool)
		if err != nil {
			skip("%s not on PATH, cannot check the generated code (see gen.sh for the tools)", tool)
		}
		out, err := exec.Command(path, "--version").CombinedOutput()
		if err != nil {
			skip("%s --version: %v", path, err)
		}
		if got := strings.TrimSpace(string(out)); got != version {
			skip("%s is %q, the committed code was generated with %q (see gen.sh)", path, got, version)
		}
	}
	// Read the inputs here too: go test caches a result by the files the test itself opens, and
	// protoc reading them in a child process would not invalidate it.
	for _, in := range []string{"meshgw.proto", "gen.sh"} {
		if _, err := os.ReadFile(in); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if out, err := exec.Command("sh", "gen.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, out)
	}
	for _, name := range generated {
		fresh, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, committed) {
			t.Errorf("%s differs from what gen.sh generates from meshgw.proto; run gateway/api/gen.sh and commit", name)
		}
	}
}
