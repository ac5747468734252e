package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	code, out, errb := runCmd("certs", "-dir", dir, "-td", "mesh.test", "n1", "n2")
	if code != 0 {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
	for _, f := range []string{"ca.pem", "ca.key", "control.pem", "control.key", "n1.pem", "n1.key", "n2.pem", "n2.key"} {
		if !strings.Contains(out, "wrote "+filepath.Join(dir, f)+"\n") {
			t.Errorf("output does not report %s:\n%s", f, out)
		}
	}
	svid, err := x509svid.Load(filepath.Join(dir, "n2.pem"), filepath.Join(dir, "n2.key"))
	if err != nil || svid.ID.String() != "spiffe://mesh.test/meshgw/node/n2" {
		t.Errorf("n2 SVID: %v, %v", svid, err)
	}

	// A second run reuses the CA and says only what it wrote.
	code, out, _ = runCmd("certs", "-dir", dir, "-td", "mesh.test", "n3")
	if code != 0 || strings.Contains(out, "ca.pem") || !strings.Contains(out, "n3.pem") {
		t.Errorf("second run: code %d, output %q", code, out)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"certs", "-td", "mesh.test", "n1"}, 2, "-dir and -td are required"},
		{[]string{"certs", "-dir", dir}, 2, "-dir and -td are required"},
		{[]string{"certs", "-dir", dir, "-td", "mesh.test", "Bad"}, 1, `node name "Bad"`},
		{[]string{"certs", "-dir", dir, "-td", "other.test"}, 1, `not the CA of trust domain "other.test"`},
	} {
		code, _, errb := runCmd(c.args...)
		if code != c.code || !strings.Contains(errb, c.want) {
			t.Errorf("%v: code %d, stderr %q; want %d and %q", c.args, code, errb, c.code, c.want)
		}
	}
	if code, _, errb := runCmd("certs", "-h"); code != 0 || !strings.Contains(errb, "meshgw certs -dir DIR -td TRUST_DOMAIN") {
		t.Errorf("certs -h: code %d, %q", code, errb)
	}
	if code, out, _ := runCmd("help"); code != 0 || !strings.Contains(out, "meshgw certs") {
		t.Errorf("help does not list certs: %q", out)
	}
}
