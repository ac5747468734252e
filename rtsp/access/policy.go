package access

import (
	"net/netip"
)

// Action is what a client asks to do with a route.
type Action string

// Actions.
const (
	Read    Action = "read"
	Publish Action = "publish"
)

// Permissions are the routes a user (or anonymous clients) may read and publish.
type Permissions struct {
	Read    Patterns
	Publish Patterns
}

// Allows reports whether the permissions cover action on route.
func (p Permissions) Allows(a Action, route string) bool {
	if a == Publish {
		return p.Publish.Match(route)
	}
	return p.Read.Match(route)
}

// User is one configured user.
type User struct {
	Name string
	// Password checks Basic credentials; nil when the user has only Digest HA1 values.
	Password *PasswordHash
	// HA1MD5 and HA1SHA256 are H(name:realm:password) in hex for Digest; empty when not given,
	// in which case that Digest algorithm cannot authenticate the user.
	HA1MD5, HA1SHA256 string
	Permissions
	// API is the user's role on the operations listener (auth.users.*.api): "" none, "read" or
	// "admin".
	API string
	// APITokenSHA256 is the hex SHA-256 of the user's bearer token for that listener, "" when
	// the user has none.
	APITokenSHA256 string
}

// HA1 is the user's stored HA1 for a Digest algorithm, "" when absent.
func (u *User) HA1(alg string) string {
	if alg == SHA256 {
		return u.HA1SHA256
	}
	return u.HA1MD5
}

// Policy is the whole rule set of the front door. The zero Policy lets everyone read and publish
// everything, which is what a config without an auth: section means.
type Policy struct {
	// Enabled is true when the config has an auth: section; without it no credentials are asked
	// for and only address rules apply.
	Enabled bool
	// Realm is the Digest/Basic realm; HA1 values are bound to it.
	Realm string
	// Users by name.
	Users map[string]*User
	// Anonymous is what clients without credentials may do when Enabled.
	Anonymous Permissions
	// AllowBasicPlain accepts Basic credentials over plain (non-TLS) RTSP.
	AllowBasicPlain bool
	// AllowIPs, when not empty, is the only networks clients may come from.
	AllowIPs []netip.Prefix
	// RouteIPs returns a route's own address allow list (empty: no restriction). Nil means no
	// route has one.
	RouteIPs func(route string) []netip.Prefix
	// Callout, when set, is asked after the local rules pass (see Callout).
	Callout *Callout
}

// HasDigest reports whether any user can authenticate with the Digest algorithm alg, so the
// challenge offers only what can succeed.
func (p *Policy) HasDigest(alg string) bool {
	for _, u := range p.Users {
		if u.HA1(alg) != "" {
			return true
		}
	}
	return false
}

// AddressAllowed reports whether addr may use route at all: inside the global allow list and
// the route's own, when they are set. The reason names the list that refused it.
func (p *Policy) AddressAllowed(addr netip.Addr, route string) (ok bool, reason string) {
	addr = addr.Unmap()
	if len(p.AllowIPs) > 0 && !inAny(p.AllowIPs, addr) {
		return false, "address not in auth.allow_ips"
	}
	if p.RouteIPs != nil {
		if l := p.RouteIPs(route); len(l) > 0 && !inAny(l, addr) {
			return false, "address not in the route's allow_ips"
		}
	}
	return true, ""
}

func inAny(l []netip.Prefix, a netip.Addr) bool {
	for _, p := range l {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
