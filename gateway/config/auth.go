package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshgw/meshgw/rtsp/access"
)

// Auth is the auth: section. Without it (Enabled false) the front door asks for no credentials,
// as before the section existed; only routes' allow_ips apply.
type Auth struct {
	// Enabled is true when the file has an auth: section.
	Enabled bool
	// Realm is auth.realm, sent in challenges; Digest HA1 values are bound to it. Default "meshgw".
	Realm string
	// AllowBasicPlain is auth.allow_basic_plain: accept Basic credentials over plain RTSP, where
	// they cross the network in clear. Default false (Basic only over RTSPS).
	AllowBasicPlain bool
	// NonceLifetime is auth.nonce_lifetime, how long a Digest nonce stays valid. Default 5m.
	NonceLifetime time.Duration
	// MaxFailures is auth.max_failures: this many failed logins from one address within
	// FailureWindow ban it for BanTime. Default 5; 0 never bans.
	MaxFailures int
	// FailureWindow is auth.failure_window. Default 1m.
	FailureWindow time.Duration
	// BanTime is auth.ban_time. Default 10m.
	BanTime time.Duration
	// MaxConcurrentHashes is auth.max_concurrent_hashes: password hashes (Basic logins checked
	// against argon2id or bcrypt, and the equally costly dummy check for unknown users) computed
	// at once. Default 0: one per CPU. Each argon2id check allocates its hash's m= (19 MiB for
	// `meshgw passwd` hashes; bcrypt a few KiB), so the memory for hashing is at most this many
	// times the largest m= among the users (at least 19 MiB): 8 CPUs × 19 MiB = 152 MiB.
	MaxConcurrentHashes int
	// HashWait is auth.hash_wait: how long a login waits for a free hashing slot before it is
	// refused with 503 and Retry-After, at no hashing cost. Default 2s.
	HashWait time.Duration
	// AllowIPs is auth.allow_ips: when not empty, clients must come from these networks.
	AllowIPs []netip.Prefix
	// HTTP is auth.http, the URL of an external authorization service (empty: none).
	HTTP string
	// HTTPTimeout is auth.http_timeout. Default 5s.
	HTTPTimeout time.Duration
	// Anonymous is auth.anonymous: what clients without credentials may read and publish.
	Anonymous access.Permissions
	// Users is auth.users in file order.
	Users []*access.User
}

func defaultAuth() Auth {
	return Auth{Realm: "meshgw", NonceLifetime: 5 * time.Minute, MaxFailures: 5, FailureWindow: time.Minute,
		BanTime: 10 * time.Minute, HTTPTimeout: 5 * time.Second, HashWait: access.DefaultHashWait}
}

func (p *parser) auth(a *Auth, v *yaml.Node) {
	const path = "auth"
	*a = defaultAuth()
	a.Enabled = true
	m := p.section(path, v)
	if m == nil {
		return
	}
	var usersNode *yaml.Node
	p.fields(m, path, []field{
		{"realm", func(_, v *yaml.Node) {
			if p.str(&a.Realm, "auth.realm", v) && (a.Realm == "" || strings.ContainsAny(a.Realm, "\"\\\r\n")) {
				p.errorf(v, "auth.realm: must be non-empty and free of quotes, backslashes and line breaks")
			}
		}},
		{"allow_basic_plain", func(_, v *yaml.Node) { p.boolean(&a.AllowBasicPlain, "auth.allow_basic_plain", v) }},
		{"nonce_lifetime", func(_, v *yaml.Node) { p.duration(&a.NonceLifetime, "auth.nonce_lifetime", v, false) }},
		{"max_failures", func(_, v *yaml.Node) { p.integer(&a.MaxFailures, "auth.max_failures", v, 0, 1000) }},
		{"failure_window", func(_, v *yaml.Node) { p.duration(&a.FailureWindow, "auth.failure_window", v, false) }},
		{"ban_time", func(_, v *yaml.Node) { p.duration(&a.BanTime, "auth.ban_time", v, false) }},
		{"max_concurrent_hashes", func(_, v *yaml.Node) { p.integer(&a.MaxConcurrentHashes, "auth.max_concurrent_hashes", v, 0, 1024) }},
		{"hash_wait", func(_, v *yaml.Node) { p.duration(&a.HashWait, "auth.hash_wait", v, false) }},
		{"allow_ips", func(_, v *yaml.Node) { a.AllowIPs = p.prefixes("auth.allow_ips", v) }},
		{"http", func(_, v *yaml.Node) {
			var s string
			if !p.str(&s, "auth.http", v) {
				return
			}
			if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.errorf(v, "auth.http: %q is not an http:// or https:// URL", s)
				return
			}
			a.HTTP = s
		}},
		{"http_timeout", func(_, v *yaml.Node) { p.duration(&a.HTTPTimeout, "auth.http_timeout", v, false) }},
		{"anonymous", func(_, v *yaml.Node) { a.Anonymous = p.permissions("auth.anonymous", v) }},
		{"users", func(_, v *yaml.Node) { usersNode = v }},
	})
	// Users last: their HA1 values are checked against the realm, wherever realm: is written.
	if usersNode != nil {
		p.users(a, usersNode)
	}
	if len(a.Users) == 0 && len(a.Anonymous.Read) == 0 && len(a.Anonymous.Publish) == 0 && a.HTTP == "" && usersNode == nil {
		p.errorf(v, "auth: grants nothing to anyone; add users:, anonymous: or http: (or remove auth: for open access)")
	}
}

func (p *parser) users(a *Auth, v *yaml.Node) {
	const path = "auth.users"
	m := p.section(path, v)
	if m == nil {
		return
	}
	for _, e := range p.entries(m, path) {
		name := e.key.Value
		upath := path + "." + name
		if name == "" || strings.ContainsAny(name, ":\"\\") || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			p.errorf(e.key, "%s: a user name must be non-empty, without \":\", quotes, backslashes or control characters", upath)
			continue
		}
		u := &access.User{Name: name}
		um := p.section(upath, e.val)
		if um == nil {
			p.errorf(e.key, "%s: a user needs password_hash and/or digest_ha1_md5/digest_ha1_sha256", upath)
			continue
		}
		p.fields(um, upath, []field{
			{"password_hash", func(_, v *yaml.Node) {
				var s string
				if !p.str(&s, upath+".password_hash", v) {
					return
				}
				h, err := access.ParsePasswordHash(s)
				if err != nil {
					p.errorf(v, "%s.password_hash: %v", upath, err)
					return
				}
				u.Password = h
			}},
			{"digest_ha1_md5", func(_, v *yaml.Node) { p.ha1(&u.HA1MD5, access.MD5, upath+".digest_ha1_md5", v) }},
			{"digest_ha1_sha256", func(_, v *yaml.Node) { p.ha1(&u.HA1SHA256, access.SHA256, upath+".digest_ha1_sha256", v) }},
			{"read", func(_, v *yaml.Node) { u.Read = p.patterns(upath+".read", v) }},
			{"publish", func(_, v *yaml.Node) { u.Publish = p.patterns(upath+".publish", v) }},
			{"api", func(_, v *yaml.Node) { p.enum(&u.API, upath+".api", v, APIRead, APIAdmin) }},
			{"api_token_sha256", func(_, v *yaml.Node) { p.apiToken(&u.APITokenSHA256, upath+".api_token_sha256", v) }},
		})
		if u.APITokenSHA256 != "" && u.API == "" {
			p.errorf(e.key, "%s: api_token_sha256 without an api: role (read or admin) opens nothing", upath)
		}
		if u.Password == nil && u.HA1MD5 == "" && u.HA1SHA256 == "" && u.APITokenSHA256 == "" {
			p.errorf(e.key, "%s: a user needs password_hash and/or digest_ha1_md5/digest_ha1_sha256 (make them with `meshgw passwd -realm %s %s`)", upath, a.Realm, name)
			continue
		}
		a.Users = append(a.Users, u)
	}
}

func (p *parser) ha1(dst *string, alg, path string, v *yaml.Node) {
	var s string
	if !p.str(&s, path, v) {
		return
	}
	if err := access.CheckHA1(alg, s); err != nil {
		p.errorf(v, "%s: %v", path, err)
		return
	}
	*dst = strings.ToLower(s)
}

// permissions reads a {read: [...], publish: [...]} mapping.
func (p *parser) permissions(path string, v *yaml.Node) access.Permissions {
	var out access.Permissions
	m := p.section(path, v)
	if m == nil {
		return out
	}
	p.fields(m, path, []field{
		{"read", func(_, v *yaml.Node) { out.Read = p.patterns(path+".read", v) }},
		{"publish", func(_, v *yaml.Node) { out.Publish = p.patterns(path+".publish", v) }},
	})
	return out
}

// patterns reads a list of route patterns (a single string is taken as a one-item list).
func (p *parser) patterns(path string, v *yaml.Node) access.Patterns {
	s := resolve(v)
	if isNull(s) {
		return nil
	}
	items := []*yaml.Node{s}
	if s.Kind == yaml.SequenceNode {
		items = s.Content
	}
	var out access.Patterns
	for _, item := range items {
		var str string
		if !p.strWant(&str, path, item, `a route pattern like "cam1", "cam/*" or "~^cam/[0-9]+$"`) {
			continue
		}
		pat, err := access.ParsePattern(str)
		if err != nil {
			p.errorf(item, "%s: %v", path, err)
			continue
		}
		out = append(out, pat)
	}
	return out
}

// Policy turns the section into the front door's rule set; routeIPs gives a route's own address
// list (nil when no route has one).
func (a *Auth) Policy(routeIPs func(string) []netip.Prefix) *access.Policy {
	pol := &access.Policy{Enabled: a.Enabled, Realm: a.Realm, Users: map[string]*access.User{}, Anonymous: a.Anonymous,
		AllowBasicPlain: a.AllowBasicPlain, AllowIPs: a.AllowIPs, RouteIPs: routeIPs}
	for _, u := range a.Users {
		pol.Users[u.Name] = u
	}
	if a.HTTP != "" {
		pol.Callout = access.NewCallout(a.HTTP, a.HTTPTimeout)
	}
	return pol
}

// String keeps secrets out of %v dumps of the config.
func (a Auth) String() string {
	return fmt.Sprintf("{Enabled:%v Realm:%q Users:%d}", a.Enabled, a.Realm, len(a.Users))
}

// Limits are the rtsp: abuse limits. 0 means unlimited for every cap.
type Limits struct {
	// MaxSessions is rtsp.max_sessions, RTSP sessions on the server. Default 0.
	MaxSessions int
	// MaxSessionsPerRoute is rtsp.max_sessions_per_route. Default 0.
	MaxSessionsPerRoute int
	// MaxSessionsPerAddress is rtsp.max_sessions_per_address. Default 0.
	MaxSessionsPerAddress int
	// MaxUnauthenticated is rtsp.max_unauthenticated: connections none of whose requests has
	// been authorized yet. Default 1024.
	MaxUnauthenticated int
	// MaxUnauthenticatedPerAddress is rtsp.max_unauthenticated_per_address. Default 128.
	MaxUnauthenticatedPerAddress int
	// MaxRequestHeaders is rtsp.max_request_headers, header lines in one request. Default 64.
	MaxRequestHeaders int
}

func defaultLimits() Limits {
	return Limits{MaxUnauthenticated: 1024, MaxUnauthenticatedPerAddress: 128, MaxRequestHeaders: 64}
}

func (p *parser) limitFields(l *Limits) []field {
	n := func(dst *int, key string, lo, hi int) field {
		return field{key, func(_, v *yaml.Node) { p.integer(dst, "rtsp."+key, v, lo, hi) }}
	}
	return []field{
		n(&l.MaxSessions, "max_sessions", 0, 1<<24),
		n(&l.MaxSessionsPerRoute, "max_sessions_per_route", 0, 1<<24),
		n(&l.MaxSessionsPerAddress, "max_sessions_per_address", 0, 1<<24),
		n(&l.MaxUnauthenticated, "max_unauthenticated", 0, 1<<24),
		n(&l.MaxUnauthenticatedPerAddress, "max_unauthenticated_per_address", 0, 1<<24),
		n(&l.MaxRequestHeaders, "max_request_headers", 8, 255),
	}
}

// UserEntry renders the auth.users entry for a user: a one-way hash of the password (kind
// "argon2id" or "bcrypt") and, unless digest is false, the Digest HA1 values for realm. It is
// what `meshgw passwd` prints, indented to paste under users:.
func UserEntry(name, realm, password, kind string, digest bool) (string, error) {
	if name == "" || strings.ContainsAny(name, ":\"\\") {
		return "", fmt.Errorf("user name %q must be non-empty, without \":\", quotes or backslashes", name)
	}
	var hash string
	var err error
	switch kind {
	case "argon2id":
		hash, err = access.HashArgon2id(password)
	case "bcrypt":
		hash, err = access.HashBcrypt(password)
	default:
		return "", fmt.Errorf("hash %q is not argon2id or bcrypt", kind)
	}
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    %s:\n      password_hash: %q\n", yamlKey(name), hash)
	if digest {
		fmt.Fprintf(&b, "      digest_ha1_md5: %q\n", access.DigestHA1(access.MD5, name, realm, password))
		fmt.Fprintf(&b, "      digest_ha1_sha256: %q\n", access.DigestHA1(access.SHA256, name, realm, password))
	}
	return b.String(), nil
}

// yamlKey quotes a user name that YAML would otherwise read as something else.
func yamlKey(s string) string {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(s+": x"), &n); err == nil && len(n.Content) == 1 && len(n.Content[0].Content) == 2 &&
		n.Content[0].Content[0].Value == s && n.Content[0].Content[0].ShortTag() == "!!str" {
		return s
	}
	return fmt.Sprintf("%q", s)
}
