package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestIDs(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("mesh.test")
	if got := ControlID(td).String(); got != "spiffe://mesh.test/meshgw/control" {
		t.Errorf("ControlID = %s", got)
	}
	if !ControlID(spiffeid.TrustDomain{}).IsZero() {
		t.Errorf("ControlID(zero) is not zero")
	}
	id, err := NodeID(td, "edge-1")
	if err != nil || id.String() != "spiffe://mesh.test/meshgw/node/edge-1" {
		t.Fatalf("NodeID = %v, %v", id, err)
	}
	if name, err := NodeName(id); err != nil || name != "edge-1" {
		t.Errorf("NodeName(%s) = %q, %v", id, name, err)
	}
	if _, err := NodeID(spiffeid.TrustDomain{}, "n1"); err == nil {
		t.Errorf("NodeID with zero trust domain succeeded")
	}
}

func TestNodeNameValidation(t *testing.T) {
	for _, name := range []string{"n1", "a", "0", "edge-site-7", strings.Repeat("x", 63), "ip-10-0-0-1.ec2.internal", strings.Repeat("x.", 126) + "x"} {
		if err := ValidateNodeName(name); err != nil {
			t.Errorf("ValidateNodeName(%q): %v", name, err)
		}
	}
	for name, want := range map[string]string{
		"":                              "empty",
		strings.Repeat("x", 64):         "longer than 63",
		strings.Repeat("x.", 127) + "x": "255 characters long, the limit is 253",
		"N1":                            `character 'N' at offset 0 is not allowed`,
		"edge..1":                       "empty label",
		".edge":                         "empty label",
		"edge.-1":                       "must start and end each label",
		"a/b":                           `character '/' at offset 1`,
		"-a":                            "must start and end each label",
		"a-":                            "must start and end each label",
		"a b":                           `character ' ' at offset 1`,
	} {
		err := ValidateNodeName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateNodeName(%q) = %v, want error containing %q", name, err, want)
		}
	}
}

func TestNodeNameRejects(t *testing.T) {
	for _, s := range []string{
		"spiffe://mesh.test/meshgw/control",
		"spiffe://mesh.test/meshgw/other",
		"spiffe://mesh.test/meshgw/node",
		"spiffe://mesh.test/meshgw/node/n1/extra",
		"spiffe://mesh.test/meshgw/node/N1",
		"spiffe://mesh.test/other/meshgw/node/n1",
	} {
		if name, err := NodeName(spiffeid.RequireFromString(s)); err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("NodeName(%s) = %q, %v; want an error naming the ID", s, name, err)
		}
	}
}

func TestAuthorizers(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("mesh.test")
	control := AuthorizeControl(td)
	node := AuthorizeAnyNode(td)
	for _, c := range []struct {
		id            string
		control, node bool
	}{
		{"spiffe://mesh.test/meshgw/control", true, false},
		{"spiffe://mesh.test/meshgw/node/n1", false, true},
		{"spiffe://mesh.test/meshgw/other", false, false},
		{"spiffe://mesh.test/meshgw/node/n1/x", false, false},
		{"spiffe://other.test/meshgw/control", false, false},
		{"spiffe://other.test/meshgw/node/n1", false, false},
	} {
		id := spiffeid.RequireFromString(c.id)
		for _, a := range []struct {
			name string
			err  error
			want bool
		}{{"AuthorizeControl", control(id, nil), c.control}, {"AuthorizeAnyNode", node(id, nil), c.node}} {
			if (a.err == nil) != a.want {
				t.Errorf("%s(%s) = %v, want ok=%v", a.name, c.id, a.err, a.want)
				continue
			}
			var pe *PeerError
			if a.err != nil && (!errors.As(a.err, &pe) || pe.ID != c.id || !strings.Contains(a.err.Error(), c.id)) {
				t.Errorf("%s(%s) error %v does not carry the presented ID", a.name, c.id, a.err)
			}
		}
	}
	// A zero trust domain must authorize nobody, not everybody.
	zero := spiffeid.TrustDomain{}
	if AuthorizeControl(zero)(spiffeid.RequireFromString("spiffe://mesh.test/meshgw/control"), nil) == nil ||
		AuthorizeAnyNode(zero)(spiffeid.RequireFromString("spiffe://mesh.test/meshgw/node/n1"), nil) == nil {
		t.Errorf("an authorizer for the zero trust domain accepted a peer")
	}
}
