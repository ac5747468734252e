// Package identity gives the control and the nodes their SPIFFE identities and
// the mutual-TLS configurations that authorize each side by ID.
//
// The control is spiffe://<td>/meshgw/control and a node is
// spiffe://<td>/meshgw/node/<name>. An identity comes from the SPIFFE Workload
// API when SPIFFE_ENDPOINT_SOCKET is set, from static PEM files otherwise, and
// Open refuses (ErrNoIdentity) when neither is configured: there is no
// plaintext fallback.
package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

const (
	controlPath = "/meshgw/control"
	nodePrefix  = "/meshgw/node/"
	// maxNameLen is the DNS name limit (and Kubernetes' node name limit).
	maxNameLen = 253
)

// ControlID returns the SPIFFE ID of the control in trust domain td. A zero
// td yields the zero ID, which no peer can present, so an authorizer built
// from it rejects everything rather than accepting anything.
func ControlID(td spiffeid.TrustDomain) spiffeid.ID {
	id, err := spiffeid.FromPath(td, controlPath)
	if err != nil {
		return spiffeid.ID{}
	}
	return id
}

// NodeID returns the SPIFFE ID of node name in trust domain td. It fails when
// name is not a valid node name (see ValidateNodeName) or td is zero.
func NodeID(td spiffeid.TrustDomain, name string) (spiffeid.ID, error) {
	if err := ValidateNodeName(name); err != nil {
		return spiffeid.ID{}, err
	}
	if td.IsZero() {
		return spiffeid.ID{}, fmt.Errorf("identity: node ID for %q: trust domain is empty", name)
	}
	return spiffeid.FromPath(td, nodePrefix+name)
}

// ValidateNodeName reports whether name can name a node: an RFC 1123 DNS
// subdomain of at most 253 characters, i.e. dot-separated labels of a-z, 0-9
// and '-' that start and end with a letter or digit. That is exactly what a
// Kubernetes node name may be, so a DaemonSet can name each node after its
// host. Upper case is refused rather than folded because SPIFFE ID paths are
// case-sensitive: "N1" and "n1" would be two identities for what an operator
// reads as one node.
func ValidateNodeName(name string) error {
	switch {
	case name == "":
		return errors.New("identity: node name is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("identity: node name %q is %d characters long, the limit is %d", name, len(name), maxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '.' {
			return fmt.Errorf("identity: node name %q: character %q at offset %d is not allowed (use a-z, 0-9, '-' and '.')", name, c, i)
		}
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" {
			return fmt.Errorf("identity: node name %q has an empty label (two dots, or a dot at an end)", name)
		}
		if len(label) > 63 {
			return fmt.Errorf("identity: node name %q: label %q is longer than 63 characters", name, label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("identity: node name %q must start and end each label with a letter or digit", name)
		}
	}
	return nil
}

// NodeName returns the node name in a node ID (spiffe://<td>/meshgw/node/<name>).
// It does not check the trust domain: the authorizer did that during the
// handshake, against the trust domain the caller was configured with.
func NodeName(id spiffeid.ID) (string, error) {
	name, ok := strings.CutPrefix(id.Path(), nodePrefix)
	if !ok {
		return "", fmt.Errorf("identity: %q is not a meshgw node ID (want spiffe://<td>%s<name>)", id, nodePrefix)
	}
	if err := ValidateNodeName(name); err != nil {
		return "", fmt.Errorf("identity: %q is not a meshgw node ID: %w", id, err)
	}
	return name, nil
}

// PeerError reports a TLS peer that failed SPIFFE verification or
// authorization. It carries the ID the peer presented so that the control can
// log who knocked, not just that someone was refused.
type PeerError struct {
	// ID is the SPIFFE ID in the peer's leaf certificate, or "" when the
	// certificate had none that parsed.
	ID string
	// Err says why the peer was refused.
	Err error
}

// Error implements error.
func (e *PeerError) Error() string {
	id := e.ID
	if id == "" {
		id = "(no SPIFFE ID)"
	}
	return fmt.Sprintf("identity: peer %s rejected: %v", id, e.Err)
}

// Unwrap returns the reason the peer was refused.
func (e *PeerError) Unwrap() error { return e.Err }

// AuthorizeControl accepts exactly the control ID of trust domain td. Nodes
// use it to make sure they talk to the control and not to another node or to
// a workload that merely shares the CA.
func AuthorizeControl(td spiffeid.TrustDomain) tlsconfig.Authorizer {
	want := ControlID(td)
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if want.IsZero() || id != want {
			return &PeerError{ID: id.String(), Err: fmt.Errorf("not the control ID %q", want)}
		}
		return nil
	}
}

// AuthorizeAnyNode accepts any valid node ID of trust domain td. The control
// uses it; which node a connection belongs to comes from PeerNode.
func AuthorizeAnyNode(td spiffeid.TrustDomain) tlsconfig.Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if td.IsZero() || !id.MemberOf(td) {
			return &PeerError{ID: id.String(), Err: fmt.Errorf("not in trust domain %q", td)}
		}
		if _, err := NodeName(id); err != nil {
			return &PeerError{ID: id.String(), Err: fmt.Errorf("not a meshgw node ID (want spiffe://%s%s<name>)", td, nodePrefix)}
		}
		return nil
	}
}

// PeerNode returns the node name of the authenticated peer of a gRPC call. It
// works with credentials from grpccredentials and with
// credentials.NewTLS(ServerTLS(...)); in both cases the handshake already
// verified the chain and the authorizer (AuthorizeAnyNode) the trust domain,
// so only the name is extracted here.
func PeerNode(ctx context.Context) (string, error) {
	id, ok := grpccredentials.PeerIDFromContext(ctx)
	if !ok {
		p, ok := peer.FromContext(ctx)
		if !ok {
			return "", errors.New("identity: no gRPC peer in context")
		}
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok {
			return "", fmt.Errorf("identity: gRPC peer %s is not authenticated by TLS (auth info %T)", p.Addr, p.AuthInfo)
		}
		certs := info.State.PeerCertificates
		if len(certs) == 0 {
			return "", fmt.Errorf("identity: gRPC peer %s presented no certificate", p.Addr)
		}
		var err error
		if id, err = x509svid.IDFromCert(certs[0]); err != nil {
			return "", fmt.Errorf("identity: gRPC peer %s: %w", p.Addr, err)
		}
	}
	return NodeName(id)
}
