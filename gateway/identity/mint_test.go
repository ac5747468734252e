package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestMint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new") // Mint creates the directory
	written, err := Mint(dir, "mesh.test", "n1", "n2")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, b := range []string{"ca", "control", "n1", "n2"} {
		want = append(want, filepath.Join(dir, b+".key"), filepath.Join(dir, b+".pem"))
	}
	if strings.Join(written, " ") != strings.Join(want, " ") {
		t.Errorf("written = %v, want %v", written, want)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode: %v, %v", st.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("dir holds %d entries, want %d (temporary files left?)", len(entries), len(want))
	}
	td := spiffeid.RequireTrustDomainFromString("mesh.test")
	bundle, err := x509bundle.Load(td, filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca := bundle.X509Authorities()[0]
	if !ca.IsCA || ca.URIs[0].String() != "spiffe://mesh.test" || !near(ca.NotAfter, time.Now().Add(10*365*24*time.Hour)) {
		t.Errorf("CA: IsCA %v, URIs %v, NotAfter %v", ca.IsCA, ca.URIs, ca.NotAfter)
	}
	for base, id := range map[string]string{
		"control": "spiffe://mesh.test/meshgw/control",
		"n1":      "spiffe://mesh.test/meshgw/node/n1",
		"n2":      "spiffe://mesh.test/meshgw/node/n2",
	} {
		for ext, mode := range map[string]os.FileMode{".key": 0o600, ".pem": 0o644} {
			if st, err := os.Stat(filepath.Join(dir, base+ext)); err != nil || st.Mode().Perm() != mode {
				t.Errorf("%s%s: mode %v, %v; want %v", base, ext, st.Mode().Perm(), err, mode)
			}
		}
		svid, err := x509svid.Load(filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key"))
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		leaf := svid.Certificates[0]
		if svid.ID.String() != id {
			t.Errorf("%s: ID %s, want %s", base, svid.ID, id)
		}
		if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", base, leaf.PublicKey)
		}
		if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
			t.Errorf("%s: EKU %v", base, leaf.ExtKeyUsage)
		}
		if !near(leaf.NotAfter, time.Now().Add(365*24*time.Hour)) {
			t.Errorf("%s: NotAfter %v", base, leaf.NotAfter)
		}
		if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
			t.Errorf("%s does not verify: %v", base, err)
		}
	}
}

// near reports whether a certificate time is within a day of want; the
// validity periods are in years, so this is exact enough and clock-proof.
func near(got, want time.Time) bool {
	d := got.Sub(want)
	return d > -24*time.Hour && d < 24*time.Hour
}

func TestMintReusesCA(t *testing.T) {
	dir := mintDir(t, "mesh.test", "n1")
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	n1Before, _ := os.ReadFile(filepath.Join(dir, "n1.pem"))
	written, err := Mint(dir, "mesh.test", "n3")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range written {
		if strings.HasPrefix(filepath.Base(p), "ca.") {
			t.Errorf("existing CA rewritten: %s", p)
		}
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	n1After, _ := os.ReadFile(filepath.Join(dir, "n1.pem"))
	if string(caBefore) != string(caAfter) || string(n1Before) != string(n1After) {
		t.Errorf("CA or untouched node changed")
	}
	bundle, _ := x509bundle.Load(spiffeid.RequireTrustDomainFromString("mesh.test"), filepath.Join(dir, "ca.pem"))
	svid, err := x509svid.Load(filepath.Join(dir, "n3.pem"), filepath.Join(dir, "n3.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
		t.Errorf("n3 is not signed by the reused CA: %v", err)
	}
}

func TestMintErrors(t *testing.T) {
	dir := mintDir(t, "mesh.test")
	for _, c := range []struct {
		td    string
		names []string
		want  string
	}{
		{"", nil, `trust domain ""`},
		{"Mesh.Test", nil, `trust domain "Mesh.Test"`},
		{"mesh.test", []string{"control"}, `node name "control" is reserved`},
		{"mesh.test", []string{"ca"}, `node name "ca" is reserved`},
		{"mesh.test", []string{"n1", "n1"}, `node name "n1" given twice`},
		{"mesh.test", []string{"Bad_Name"}, `node name "Bad_Name": character 'B' at offset 0`},
		{"other.test", nil, `is not the CA of trust domain "other.test"`},
	} {
		if _, err := Mint(dir, c.td, c.names...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Mint(%q, %v) = %v, want error containing %q", c.td, c.names, err, c.want)
		}
	}
	// Half a CA is an error, not a reason to mint a new one over it.
	if err := os.Remove(filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := Mint(dir, "mesh.test", "n1"); err == nil || !strings.Contains(err.Error(), "ca.key") {
		t.Errorf("Mint with ca.pem but no ca.key = %v", err)
	}
}
