package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// backdate tolerates clocks of other hosts that run slightly behind.
	backdate = 5 * time.Minute
	// controlName is the file base name of the control's SVID; it is not a
	// valid node name for Mint so the files cannot collide.
	controlName = "control"
)

// Mint creates or extends a self-contained test trust domain td in dir: the
// CA (ca.pem, the bundle, and ca.key) and an SVID for the control
// (control.pem, control.key) and for each node name (<name>.pem, <name>.key).
// Leaves are ECDSA P-256 with the SPIFFE ID as URI SAN, usable as TLS server
// and client, valid for a year; the CA for ten years. Keys are PKCS#8 and
// mode 0600. An existing CA in dir is reused, so Mint can add nodes later or
// re-issue (rotate) an SVID; files are replaced atomically so a running
// Source never reads half a file. It returns the paths it wrote, in order.
func Mint(dir, td string, names ...string) ([]string, error) {
	trust, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return nil, fmt.Errorf("identity: mint: trust domain %q: %w", td, err)
	}
	ids := []spiffeid.ID{ControlID(trust)}
	bases := []string{controlName}
	seen := map[string]bool{}
	for _, n := range names {
		switch {
		case seen[n]:
			return nil, fmt.Errorf("identity: mint: node name %q given twice", n)
		case n == controlName || n == "ca":
			return nil, fmt.Errorf("identity: mint: node name %q is reserved (its files would clash with %s.pem)", n, n)
		}
		seen[n] = true
		id, err := NodeID(trust, n)
		if err != nil {
			return nil, fmt.Errorf("identity: mint: %w", err)
		}
		ids = append(ids, id)
		bases = append(bases, n)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: mint: %w", err)
	}

	var written []string
	ca, caKey, err := loadCA(dir, trust)
	if errors.Is(err, errNoCA) {
		if ca, caKey, err = newCA(trust); err != nil {
			return nil, err
		}
		if written, err = writePair(dir, "ca", ca, caKey, written); err != nil {
			return written, err
		}
	} else if err != nil {
		return nil, err
	}
	for i, id := range ids {
		leaf, key, err := newLeaf(ca, caKey, id, bases[i])
		if err != nil {
			return written, err
		}
		if written, err = writePair(dir, bases[i], leaf, key, written); err != nil {
			return written, err
		}
	}
	return written, nil
}

// errNoCA says that dir holds no CA yet, so Mint creates one. It is distinct
// from fs.ErrNotExist: a lone ca.pem without ca.key must stop Mint rather than
// have it overwrite the CA that other SVIDs chain to.
var errNoCA = errors.New("no CA")

// loadCA reads the CA of an earlier Mint in dir. It returns errNoCA only when
// neither ca.pem nor ca.key exists.
func loadCA(dir string, td spiffeid.TrustDomain) (*x509.Certificate, crypto.Signer, error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	certPEM, errC := os.ReadFile(certPath)
	keyPEM, errK := os.ReadFile(keyPath)
	switch {
	case errors.Is(errC, fs.ErrNotExist) && errors.Is(errK, fs.ErrNotExist):
		return nil, nil, errNoCA
	case errC != nil:
		return nil, nil, fmt.Errorf("identity: mint: reuse CA: %w", errC)
	case errK != nil:
		return nil, nil, fmt.Errorf("identity: mint: reuse CA: %w", errK)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("identity: mint: %s: no PEM certificate", certPath)
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: %s: %w", certPath, err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, nil, fmt.Errorf("identity: mint: %s: no PKCS#8 PEM private key", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: %s: %w", keyPath, err)
	}
	key, ok := k.(crypto.Signer)
	if !ok || !publicKeyEqual(key.Public(), ca.PublicKey) {
		return nil, nil, fmt.Errorf("identity: mint: %s does not match %s", keyPath, certPath)
	}
	if len(ca.URIs) != 1 || ca.URIs[0].String() != td.IDString() {
		return nil, nil, fmt.Errorf("identity: mint: %s is not the CA of trust domain %q (URI SANs %v)", certPath, td, ca.URIs)
	}
	return ca, key, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func newCA(td spiffeid.TrustDomain) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: CA key: %w", err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"meshgw"}, CommonName: "meshgw test CA " + td.Name()},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: CA certificate: %w", err)
	}
	return ca, key, nil
}

// newLeaf issues an X509-SVID for id; base names it in errors.
func newLeaf(ca *x509.Certificate, caKey crypto.Signer, id spiffeid.ID, base string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: %s key: %w", base, err)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"meshgw"}, CommonName: base},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(leafValidity),
		// digitalSignature only: x509svid.Parse rejects leaves that may sign
		// certificates, and ECDSA keys do no key encipherment.
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:        []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: %s certificate: %w", base, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: %s certificate: %w", base, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: mint: %s key: %w", base, err)
	}
	// Check the result the way peers will, so a bad template fails here.
	if _, err := x509svid.ParseRaw(der, keyDER); err != nil {
		return nil, nil, fmt.Errorf("identity: mint: %s is not a valid X509-SVID: %w", base, err)
	}
	return leaf, key, nil
}

func randSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("identity: mint: serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// writePair writes base.pem and base.key (0600) in dir and appends their
// paths to written. The key goes first: a Source that catches the pair
// mid-rotation then sees a new key with the old cert, fails to load and keeps
// its current SVID until the cert follows.
func writePair(dir, base string, cert *x509.Certificate, key crypto.Signer, written []string) ([]string, error) {
	keyPath, certPath := filepath.Join(dir, base+".key"), filepath.Join(dir, base+".pem")
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return written, fmt.Errorf("identity: mint: %s: %w", keyPath, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return written, err
	}
	written = append(written, keyPath)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := writeAtomic(certPath, certPEM, 0o644); err != nil {
		return written, err
	}
	return append(written, certPath), nil
}

// writeAtomic replaces path with data through a temporary file and a rename.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("identity: mint: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this finds nothing
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: mint: write %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("identity: mint: chmod %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("identity: mint: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("identity: mint: %w", err)
	}
	return nil
}
