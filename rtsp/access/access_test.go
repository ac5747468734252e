package access

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPasswordHashes(t *testing.T) {
	for _, kind := range []string{"argon2id", "bcrypt"} {
		var s string
		var err error
		if kind == "argon2id" {
			s, err = HashArgon2id("pa:ss wörd")
		} else {
			s, err = HashBcrypt("pa:ss wörd")
		}
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParsePasswordHash(s)
		if err != nil {
			t.Fatalf("%s: parse own hash %q: %v", kind, s, err)
		}
		if h.Kind() != kind || h.String() != s {
			t.Errorf("%s: kind %q string %q", kind, h.Kind(), h.String())
		}
		if !h.Verify("pa:ss wörd") {
			t.Errorf("%s: right password refused", kind)
		}
		for _, bad := range []string{"", "pa:ss word", "pa:ss wörd ", "PA:SS WÖRD"} {
			if h.Verify(bad) {
				t.Errorf("%s: wrong password %q accepted", kind, bad)
			}
		}
	}
	if _, err := HashBcrypt(strings.Repeat("x", 73)); err == nil {
		t.Error("bcrypt accepted a password it would truncate")
	}
}

func TestParsePasswordHashRejects(t *testing.T) {
	good, _ := HashArgon2id("x")
	for _, s := range []string{
		"", "secret", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		strings.Replace(good, "v=19", "v=16", 1),
		strings.Replace(good, "m=19456", "m=99999999", 1), // over the memory cap
		strings.Replace(good, "t=2", "t=0", 1),
		strings.Replace(good, "p=1", "p=1,p=2", 1),
		strings.Replace(good, "m=19456,", "", 1),
		good[:len(good)-30],
		"$2a$10$short",
		"$2a$99$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
	} {
		if _, err := ParsePasswordHash(s); err == nil {
			t.Errorf("ParsePasswordHash(%q) accepted", s)
		}
	}
}

func TestDigestHA1(t *testing.T) {
	// RFC 2617 §3.5: HA1 of Mufasa:testrealm@host.com:Circle Of Life.
	if got := DigestHA1(MD5, "Mufasa", "testrealm@host.com", "Circle Of Life"); got != "939e7578ed9e3c518a452acee763bce9" {
		t.Errorf("MD5 HA1 = %s", got)
	}
	// RFC 7616 §3.9.1 uses the same credentials in realm http-auth@example.org; its SHA-256
	// response 753927fa… with qop=auth follows from this HA1 (checked against the RFC by hand).
	ha1 := DigestHA1(SHA256, "Mufasa", "http-auth@example.org", "Circle of Life")
	ha2 := DigestHash(SHA256, "GET:/dir/index.html")
	resp := DigestHash(SHA256, ha1+":7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v:00000001:f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ:auth:"+ha2)
	if resp != "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1" {
		t.Errorf("SHA-256 digest response = %s", resp)
	}
	if CheckHA1(MD5, "939e7578ed9e3c518a452acee763bce9") != nil || CheckHA1(SHA256, ha1) != nil {
		t.Error("CheckHA1 refused a valid HA1")
	}
	for _, c := range [][2]string{{MD5, ha1}, {SHA256, "939e7578ed9e3c518a452acee763bce9"}, {MD5, strings.Repeat("g", 32)}} {
		if CheckHA1(c[0], c[1]) == nil {
			t.Errorf("CheckHA1(%s, %q) accepted", c[0], c[1])
		}
	}
}

func TestPatterns(t *testing.T) {
	cases := []struct {
		pat  string
		yes  []string
		none []string
	}{
		{"cam1", []string{"cam1"}, []string{"cam10", "cam", "x/cam1"}},
		{"/cam1/", []string{"cam1"}, []string{"cam2"}},
		{"cam/*", []string{"cam/1", "cam/abc"}, []string{"cam/1/2", "cam", "camx/1"}},
		{"lobby-?", []string{"lobby-a"}, []string{"lobby-ab"}},
		{"*", []string{"a", "a/b/c"}, nil},
		{"~^cam/[0-9]+$", []string{"cam/1", "cam/42"}, []string{"cam/x", "xcam/1", "cam/1/2"}},
		{"~live", []string{"live", "a/live/b"}, []string{"lie"}},
	}
	for _, c := range cases {
		p, err := ParsePattern(c.pat)
		if err != nil {
			t.Fatalf("%q: %v", c.pat, err)
		}
		for _, s := range c.yes {
			if !p.Match(s) {
				t.Errorf("%q does not match %q", c.pat, s)
			}
		}
		for _, s := range c.none {
			if p.Match(s) {
				t.Errorf("%q matches %q", c.pat, s)
			}
		}
	}
	for _, bad := range []string{"", "~", "~(", "cam/[", "a\\"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
	a, _ := ParsePattern("a")
	b, _ := ParsePattern("b/*")
	perm := Permissions{Read: Patterns{a, b}, Publish: Patterns{a}}
	if !perm.Allows(Read, "b/x") || perm.Allows(Publish, "b/x") || !perm.Allows(Publish, "a") || (Permissions{}).Allows(Read, "a") {
		t.Error("Permissions.Allows is wrong")
	}
}

func TestAddressAllowed(t *testing.T) {
	p := &Policy{AllowIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		RouteIPs: func(r string) []netip.Prefix {
			if r == "secret" {
				return []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
			}
			return nil
		}}
	for _, c := range []struct {
		addr, route string
		ok          bool
	}{
		{"10.2.3.4", "open", true}, {"::ffff:10.2.3.4", "open", true}, {"::1", "open", true},
		{"192.168.1.1", "open", false}, {"10.1.2.3", "secret", true}, {"10.2.3.4", "secret", false},
	} {
		ok, why := p.AddressAllowed(netip.MustParseAddr(c.addr), c.route)
		if ok != c.ok || (!ok && why == "") {
			t.Errorf("AddressAllowed(%s, %s) = %v %q", c.addr, c.route, ok, why)
		}
	}
	if ok, _ := (&Policy{}).AddressAllowed(netip.MustParseAddr("1.2.3.4"), "x"); !ok {
		t.Error("a policy without lists refused an address")
	}
}

func TestBans(t *testing.T) {
	now := time.Unix(1000, 0)
	b := NewBans(BanConfig{MaxFailures: 3, Window: time.Minute, BanTime: 10 * time.Minute, MaxTracked: 4}, func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	b.Fail(a)
	now = now.Add(2 * time.Minute) // the first failure leaves the window
	if n, banned := b.Fail(a); n != 1 || banned {
		t.Fatalf("after a stale failure: n=%d banned=%v", n, banned)
	}
	b.Fail(a)
	if _, banned := b.Banned(a); banned {
		t.Fatal("banned after 2 failures")
	}
	if n, banned := b.Fail(netip.MustParseAddr("::ffff:192.0.2.1")); n != 3 || !banned {
		t.Fatalf("third failure (v4-mapped) n=%d banned=%v", n, banned)
	}
	if _, banned := b.Banned(a); !banned {
		t.Fatal("not banned after 3 failures")
	}
	if _, banned := b.Banned(other); banned {
		t.Fatal("another address is banned")
	}
	now = now.Add(10 * time.Minute)
	if _, banned := b.Banned(a); banned {
		t.Fatal("ban outlived ban_time")
	}
	// a spread attack cannot grow the table past MaxTracked
	for i := range 100 {
		b.Fail(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	if n := b.Tracked(); n > 4 {
		t.Errorf("tracking %d addresses, cap 4", n)
	}
	// an IPv6 host is counted by its /64
	b6 := NewBans(BanConfig{MaxFailures: 2, Window: time.Minute, BanTime: time.Minute}, func() time.Time { return now })
	b6.Fail(netip.MustParseAddr("2001:db8:1:2::1"))
	b6.Fail(netip.MustParseAddr("2001:db8:1:2:ffff::9"))
	if _, banned := b6.Banned(netip.MustParseAddr("2001:db8:1:2::77")); !banned {
		t.Error("IPv6 /64 not banned as one client")
	}
	if _, banned := b6.Banned(netip.MustParseAddr("2001:db8:1:3::1")); banned {
		t.Error("neighbouring /64 banned")
	}
	if k := ClientKey(netip.MustParseAddr("::ffff:192.0.2.9")); k != netip.MustParseAddr("192.0.2.9") {
		t.Errorf("ClientKey of a v4-mapped address = %v", k)
	}
	var nilBans *Bans
	if _, banned := nilBans.Banned(a); banned {
		t.Error("nil Bans banned")
	}
	if _, banned := nilBans.Fail(a); banned {
		t.Error("nil Bans banned")
	}
}

func TestCallout(t *testing.T) {
	var mu sync.Mutex
	var got []CalloutRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cr CalloutRequest
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&cr) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, cr)
		mu.Unlock()
		switch cr.User {
		case "ok":
			w.WriteHeader(http.StatusNoContent)
		case "slow":
			time.Sleep(500 * time.Millisecond)
		case "redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	c := NewCallout(srv.URL, 200*time.Millisecond)
	ctx := context.Background()
	if ok, st, err := c.Ask(ctx, CalloutRequest{User: "ok", Password: "pw", Action: Publish, Path: "p", IP: "127.0.0.1", Query: "a=b"}); !ok || st != 204 || err != nil {
		t.Errorf("ok: %v %d %v", ok, st, err)
	}
	if ok, st, _ := c.Ask(ctx, CalloutRequest{User: "no", Action: Read}); ok || st != 403 {
		t.Errorf("no: %v %d", ok, st)
	}
	if ok, st, _ := c.Ask(ctx, CalloutRequest{User: "redirect", Action: Read}); ok || st != 302 {
		t.Errorf("redirect: %v %d (a redirect must not be followed)", ok, st)
	}
	if ok, _, err := c.Ask(ctx, CalloutRequest{User: "slow", Action: Read}); ok || err == nil {
		t.Errorf("slow: %v %v, want a timeout error", ok, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 1 || got[0] != (CalloutRequest{User: "ok", Password: "pw", Action: Publish, Path: "p", IP: "127.0.0.1", Query: "a=b"}) {
		t.Errorf("service saw %+v", got)
	}
	if ok, _, err := NewCallout("http://u:hunter2@127.0.0.1:1/", time.Second).Ask(ctx, CalloutRequest{}); ok || err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("unreachable service: %v %v (the URL's password must not show)", ok, err)
	}
}
