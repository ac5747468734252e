package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runCmd("version")
	if code != 0 || !strings.HasPrefix(out, "meshgw ") {
		t.Fatalf("version: code %d, %q", code, out)
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"run", "-h"}} {
		code, out, errb := runCmd(args...)
		if code != 0 || !strings.Contains(out+errb, "meshgw check -c FILE") {
			t.Errorf("%v: code %d, output %q", args, code, out+errb)
		}
	}
	if code, _, errb := runCmd("frobnicate"); code != 2 || !strings.Contains(errb, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: code %d, %q", code, errb)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("rtsp:\n  listen: 127.0.0.1:8554\nroutes:\n  demo:\n    source: demo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("rtsp:\n  listen: 127.0.0.1:8554\n  bogus: 1\nroutes:\n  cam:\n    source: ftp://x\n    on_demand: maybe\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errb := runCmd("check", "-c", good); code != 0 || !strings.Contains(out, "ok (1 routes)") {
		t.Fatalf("good config: code %d, %q %q", code, out, errb)
	}
	code, _, errb := runCmd("check", "-c", bad)
	if code != 1 {
		t.Fatalf("bad config: code %d", code)
	}
	// one FILE:LINE: message per problem, each on its own line
	lines := strings.Split(strings.TrimSpace(errb), "\n")
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(bad) + `:(\d+): `)
	wantLines := map[string]bool{"3": false, "6": false, "7": false}
	for _, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line not in FILE:LINE: form: %q", l)
			continue
		}
		wantLines[m[1]] = true
	}
	for ln, seen := range wantLines {
		if !seen {
			t.Errorf("no error reported for line %s:\n%s", ln, errb)
		}
	}
	if code, _, _ := runCmd("check"); code != 2 {
		t.Errorf("check without -c: code %d", code)
	}
	if code, _, errb := runCmd("check", "-c", filepath.Join(dir, "missing.yaml")); code != 1 || errb == "" {
		t.Errorf("missing file: code %d %q", code, errb)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("routes: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errb := runCmd("run", "-c", bad); code != 1 || errb == "" {
		t.Fatalf("run with bad config: code %d %q", code, errb)
	}
}
