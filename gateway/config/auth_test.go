package config

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/rtsp/access"
)

const authArgon = "$argon2id$v=19$m=19456,t=2,p=1$eRFZFbwyfiJUGFYF4ACTOQ$VCv7gGY6L51CIRTLUr5/p3UqvxItbMbwByF6VouIv3o"

func TestAuthSection(t *testing.T) {
	c := mustParse(t, `
rtsp:
  max_sessions: 100
  max_sessions_per_route: 20
  max_sessions_per_address: 4
  max_unauthenticated: 50
  max_unauthenticated_per_address: 5
  max_request_headers: 32
auth:
  users:
    alice:
      password_hash: "`+authArgon+`"
      digest_ha1_md5: "0A24502F174835493EB8D9B59A8A21B2"
      digest_ha1_sha256: 26e25a3fd752c49a8f1b308625bcacaf106e0f2e3ad0985495b3d3d015f69b33
      read: ["cam/*", "~^live/[0-9]+$"]
      publish: studio
    "bob":
      password_hash: $2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy
      read: ["*"]
  realm: cams
  allow_basic_plain: yes
  nonce_lifetime: 1m
  max_failures: 3
  failure_window: 30s
  ban_time: 1h
  max_concurrent_hashes: 3
  hash_wait: 500ms
  allow_ips: [10.0.0.0/8, "::1/128"]
  http: https://auth.example/check
  http_timeout: 2s
  anonymous: {read: [demo]}
routes:
  demo: {source: demo, allow_ips: [192.168.0.0/16]}
  studio:
`)
	l := c.RTSP.Limits
	if l != (Limits{100, 20, 4, 50, 5, 32}) {
		t.Errorf("limits %+v", l)
	}
	a := c.Auth
	if !a.Enabled || a.Realm != "cams" || !a.AllowBasicPlain || a.NonceLifetime != time.Minute || a.MaxFailures != 3 ||
		a.FailureWindow != 30*time.Second || a.BanTime != time.Hour || len(a.AllowIPs) != 2 || a.HTTP != "https://auth.example/check" ||
		a.HTTPTimeout != 2*time.Second || len(a.Users) != 2 || a.MaxConcurrentHashes != 3 || a.HashWait != 500*time.Millisecond {
		t.Fatalf("auth %+v", a)
	}
	if s := a.String(); strings.Contains(s, "argon") || strings.Contains(s, "0a2450") {
		t.Errorf("Auth.String leaks secrets: %s", s)
	}
	al, bob := a.Users[0], a.Users[1]
	if al.Name != "alice" || al.Password.Kind() != "argon2id" || al.HA1MD5 != "0a24502f174835493eb8d9b59a8a21b2" || al.HA1SHA256 == "" ||
		!al.Allows(access.Read, "cam/1") || !al.Allows(access.Read, "live/7") || al.Allows(access.Read, "demo") ||
		!al.Allows(access.Publish, "studio") || al.Allows(access.Publish, "cam/1") {
		t.Errorf("alice %+v", al)
	}
	if bob.Password.Kind() != "bcrypt" || bob.HA1MD5 != "" || !bob.Allows(access.Read, "any/thing") || bob.Allows(access.Publish, "studio") {
		t.Errorf("bob %+v", bob)
	}
	if !a.Anonymous.Allows(access.Read, "demo") || a.Anonymous.Allows(access.Publish, "demo") {
		t.Errorf("anonymous %+v", a.Anonymous)
	}
	if got := c.Routes[0].AllowIPs; len(got) != 1 || got[0] != netip.MustParsePrefix("192.168.0.0/16") {
		t.Errorf("route allow_ips %v", got)
	}
	pol := a.Policy(nil)
	if !pol.Enabled || pol.Users["bob"] != bob || pol.Callout == nil || !pol.HasDigest(access.MD5) {
		t.Errorf("policy %+v", pol)
	}
}

func TestAuthDefaults(t *testing.T) {
	c := mustParse(t, minimalYAML)
	if c.Auth.Enabled || c.RTSP.Limits != (Limits{MaxUnauthenticated: 1024, MaxUnauthenticatedPerAddress: 128, MaxRequestHeaders: 64}) {
		t.Errorf("defaults: auth %+v limits %+v", c.Auth, c.RTSP.Limits)
	}
	c = mustParse(t, "auth: {anonymous: {read: ['*']}}\nroutes: {demo: {source: demo}}\n")
	a := c.Auth
	if !a.Enabled || a.Realm != "meshgw" || a.AllowBasicPlain || a.NonceLifetime != 5*time.Minute || a.MaxFailures != 5 ||
		a.FailureWindow != time.Minute || a.BanTime != 10*time.Minute || a.HTTPTimeout != 5*time.Second {
		t.Errorf("auth defaults %+v", a)
	}
}

func TestAuthErrors(t *testing.T) {
	const r = "routes: {demo: {source: demo}}\n"
	for _, c := range []struct{ yaml, want string }{
		{"auth: {}\n" + r, "t.yaml:1: auth: grants nothing to anyone"},
		{"auth:\n  users:\n    al:\n      password_hash: secret\n" + r, `t.yaml:4: auth.users.al.password_hash: not an argon2id`},
		{"auth:\n  users:\n    al:\n      digest_ha1_md5: abc\n" + r, `t.yaml:4: auth.users.al.digest_ha1_md5: a MD5 HA1 is 32 hex digits, got 3`},
		{"auth:\n  users:\n    al: {read: [x]}\n" + r, `t.yaml:3: auth.users.al: a user needs password_hash`},
		{"auth:\n  users:\n    \"a:b\": {password_hash: \"" + authArgon + "\"}\n" + r, `t.yaml:3: auth.users.a:b: a user name must be non-empty`},
		{"auth:\n  users:\n    al: {password_hash: \"" + authArgon + "\", read: [\"~(\"]}\n" + r, `auth.users.al.read: invalid regular expression`},
		{"auth:\n  users:\n    al: {password_hash: \"" + authArgon + "\", publish: [\"a/[\"]}\n" + r, `auth.users.al.publish: invalid glob`},
		{"auth:\n  users:\n    al: {password_hash: \"" + authArgon + "\", wirte: [a]}\n" + r, `auth.users.al: unknown key "wirte"`},
		{"auth: {anonymous: {read: [a]}, allow_ips: [10.0.0.1/8]}\n" + r, `auth.allow_ips: 10.0.0.1/8 has host bits set`},
		{"auth: {anonymous: {read: [a]}, http: ftp://x}\n" + r, `auth.http: "ftp://x" is not an http:// or https:// URL`},
		{"auth: {anonymous: {read: [a]}, realm: 'a\"b'}\n" + r, `auth.realm: must be non-empty`},
		{"auth: {anonymous: {read: [a]}, max_failures: -1}\n" + r, `auth.max_failures: -1 is out of range`},
		{"auth: {anonymous: {read: [a]}, ban_time: 10}\n" + r, `auth.ban_time: expected a duration`},
		{"auth:\n  anonymous: {read: [a]}\n  max_concurrent_hashes: 5000\n" + r, `t.yaml:3: auth.max_concurrent_hashes: 5000 is out of range (0-1024)`},
		{"auth:\n  anonymous: {read: [a]}\n  hash_wait: 0s\n" + r, `t.yaml:3: auth.hash_wait: must be greater than 0`},
		{"auth: {anonymous: {raed: [a]}}\n" + r, `auth.anonymous: unknown key "raed"; did you mean "read"?`},
		{"rtsp: {max_request_headers: 2}\n" + r, `rtsp.max_request_headers: 2 is out of range (8-255)`},
		{"rtsp: {max_sessions: -1}\n" + r, `rtsp.max_sessions: -1 is out of range`},
		{"routes: {demo: {source: demo, allow_ips: [nope]}}\n", `routes.demo.allow_ips: "nope" is not a network`},
		{"node: {control: \"10.0.0.1:8443\", data_address: 10.0.0.2}\nauth: {anonymous: {read: [a]}}\n", `t.yaml:2: auth: belongs in the control's file`},
	} {
		_, err := Parse("t.yaml", []byte(c.yaml))
		var errs *Errors
		if !errors.As(err, &errs) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %q", c.yaml, err, c.want)
		}
	}
}

func TestUserEntryRoundTrip(t *testing.T) {
	for _, kind := range []string{"argon2id", "bcrypt"} {
		e, err := UserEntry("carol", "cams", "s3cr:t", kind, true)
		if err != nil {
			t.Fatal(err)
		}
		c := mustParse(t, "auth:\n  realm: cams\n  users:\n"+e+"      read: [x]\nroutes: {x: {source: demo}}\n")
		u := c.Auth.Users[0]
		if u.Name != "carol" || u.Password.Kind() != kind || !u.Password.Verify("s3cr:t") ||
			u.HA1MD5 != access.DigestHA1(access.MD5, "carol", "cams", "s3cr:t") || u.HA1SHA256 != access.DigestHA1(access.SHA256, "carol", "cams", "s3cr:t") {
			t.Errorf("%s: entry %q parsed to %+v", kind, e, u)
		}
	}
	e, err := UserEntry("true", "r", "pw", "bcrypt", false)
	if err != nil || !strings.Contains(e, `"true":`) || strings.Contains(e, "digest") {
		t.Errorf("entry for user 'true' without digest: %q %v", e, err)
	}
	for _, bad := range [][2]string{{"", "argon2id"}, {"a:b", "argon2id"}, {"a", "md5"}} {
		if _, err := UserEntry(bad[0], "r", "pw", bad[1], true); err == nil {
			t.Errorf("UserEntry(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// FuzzParseAuth feeds auth: sections (users, permissions, address lists) to the parser: it must
// report errors, never panic, and every accepted user must be usable.
func FuzzParseAuth(f *testing.F) {
	f.Add("users:\n  al:\n    password_hash: \"" + authArgon + "\"\n    read: [\"cam/*\", \"~^x$\"]\n    publish: p\n")
	f.Add("users:\n  al: {digest_ha1_md5: 0a24502f174835493eb8d9b59a8a21b2, read: '*'}\n")
	f.Add("anonymous: {read: [a], publish: [\"[\"]}\nallow_ips: [10.0.0.0/8]\n")
	f.Add("http: http://h/x\nhttp_timeout: 1s\nrealm: r\nmax_failures: 2\n")
	f.Add("users: {a: {password_hash: $2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy}}\n")
	f.Fuzz(func(t *testing.T, section string) {
		var b strings.Builder
		b.WriteString("auth:\n")
		for _, l := range strings.Split(section, "\n") {
			b.WriteString("  " + l + "\n")
		}
		b.WriteString("routes: {x: {source: demo}}\n")
		c, err := Parse("f.yaml", []byte(b.String()))
		if err != nil {
			return
		}
		pol := c.Auth.Policy(nil)
		for _, u := range c.Auth.Users {
			if u.Name == "" || (u.Password == nil && u.HA1MD5 == "" && u.HA1SHA256 == "") {
				t.Fatalf("accepted unusable user %+v", u)
			}
			u.Allows(access.Read, "x")
			u.Allows(access.Publish, "a/b")
		}
		pol.HasDigest(access.MD5)
		pol.AddressAllowed(netip.MustParseAddr("10.1.2.3"), "x")
	})
}
