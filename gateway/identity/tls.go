package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// X509Source is what the TLS helpers need: the SVID to present and the bundles
// to verify peers with. *Source implements it, and so does
// *workloadapi.X509Source.
type X509Source interface {
	x509svid.Source
	x509bundle.Source
}

// ServerTLS returns the TLS config of a server (the control) that presents
// src's SVID, requires a client SVID and admits only clients that authorize
// accepts. The SVID and bundle are fetched from src on every handshake, so a
// rotated SVID is used by the next connection without rebuilding the config.
// For gRPC, wrap it with credentials.NewTLS; PeerNode reads the client's ID
// back in handlers.
func ServerTLS(src X509Source, authorize tlsconfig.Authorizer) *tls.Config {
	c := tlsconfig.MTLSServerConfig(src, src, authorize)
	harden(c)
	return c
}

// ClientTLS returns the TLS config of a client (a node) that presents src's
// SVID and admits only servers that authorize accepts. Server names and
// web PKI are not consulted: the SPIFFE ID is the server's identity.
func ClientTLS(src X509Source, authorize tlsconfig.Authorizer) *tls.Config {
	c := tlsconfig.MTLSClientConfig(src, src, authorize)
	harden(c)
	return c
}

func harden(c *tls.Config) {
	// Both ends are meshgw, so there is no old peer to stay compatible with.
	c.MinVersion = tls.VersionTLS13
	verify := c.VerifyPeerCertificate
	c.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		err := verify(raw, chains)
		if err == nil {
			return nil
		}
		// go-spiffe's chain errors (unknown trust domain, wrong CA) do not say
		// which ID was presented; the control's log line has to.
		var pe *PeerError
		if errors.As(err, &pe) {
			return err
		}
		return &PeerError{ID: presentedID(raw), Err: err}
	}
}

// presentedID reads the SPIFFE ID from an unverified leaf, for error messages
// only.
func presentedID(raw [][]byte) string {
	if len(raw) == 0 {
		return ""
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return ""
	}
	if id, err := x509svid.IDFromCert(leaf); err == nil {
		return id.String()
	}
	// Not a valid SPIFFE ID, but still what the peer claims to be.
	if len(leaf.URIs) > 0 {
		return leaf.URIs[0].String()
	}
	return ""
}
