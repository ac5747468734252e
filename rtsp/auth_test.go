package rtsp

import (
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/meshgw/meshgw/rtsp/access"
)

func TestParseAuthorization(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cr, err := parseAuthorization(base.HeaderValue{"Basic " + b64("alice:pa:ss")})
	if err != nil || !cr.basic || cr.user != "alice" || cr.password != "pa:ss" {
		t.Errorf("basic with ':' in the password: %+v %v", cr, err)
	}
	cr, err = parseAuthorization(base.HeaderValue{`Digest username="bob", realm="r", nonce="n", uri="rtsp://h/x", response="abc", algorithm="SHA-256"`})
	if err != nil || cr.basic || cr.user != "bob" || cr.realm != "r" || cr.nonce != "n" || cr.uri != "rtsp://h/x" || cr.response != "abc" || cr.alg != access.SHA256 {
		t.Errorf("digest: %+v %v", cr, err)
	}
	cr, err = parseAuthorization(base.HeaderValue{`digest username="bob", realm="r", nonce="n", uri="/x", response="abc"`})
	if err != nil || cr.alg != access.MD5 {
		t.Errorf("digest without algorithm: %+v %v", cr, err)
	}
	for _, bad := range []base.HeaderValue{
		{}, {"a", "b"}, {"Basic"}, {"Basic !!!"}, {"Basic " + b64("nocolon")}, {"Bearer x"},
		{`Digest username="bob"`}, {`Digest username="bob", realm="r", nonce="n", uri="/x", response="a", algorithm="SHA-512"`},
	} {
		if _, err := parseAuthorization(bad); err == nil {
			t.Errorf("parseAuthorization(%q) accepted", bad)
		}
	}
}

func TestAuthRoute(t *testing.T) {
	for _, c := range []struct {
		m      base.Method
		uri, r string
	}{
		{base.Describe, "rtsp://h:1/cam/1", "cam/1"},
		{base.Describe, "rtsp://h:1/cam/1/?q=1", "cam/1"},
		{base.Describe, "/cam/1", "cam/1"},
		{base.Setup, "rtsp://h/cam/trackID=1", "cam"},
		{base.Setup, "rtsp://h/cam/", "cam"},
		{base.Announce, "rtsp://h/pub", "pub"},
	} {
		if r, ok := authRoute(c.m, c.uri); !ok || r != c.r {
			t.Errorf("authRoute(%s, %q) = %q %v, want %q", c.m, c.uri, r, ok, c.r)
		}
	}
	if _, ok := authRoute(base.Describe, "cam"); ok {
		t.Error("relative uri accepted")
	}
}

// authFixture is a server and a connection with a policy, driven without sockets: decide is the
// whole authorization path short of writing the response.
type authFixture struct {
	s    *Server
	c    *conn
	pol  *access.Policy
	bans *access.Bans
}

func newAuthFixture(t *testing.T, secure bool, remote string) *authFixture {
	t.Helper()
	mk := func(name, pw string, read, pub []string, digest bool) *access.User {
		u := &access.User{Name: name}
		h, err := access.HashArgon2id(pw)
		if err != nil {
			t.Fatal(err)
		}
		if u.Password, err = access.ParsePasswordHash(h); err != nil {
			t.Fatal(err)
		}
		if digest {
			u.HA1MD5 = access.DigestHA1(access.MD5, name, "test", pw)
			u.HA1SHA256 = access.DigestHA1(access.SHA256, name, "test", pw)
		}
		for _, p := range read {
			pp, _ := access.ParsePattern(p)
			u.Read = append(u.Read, pp)
		}
		for _, p := range pub {
			pp, _ := access.ParsePattern(p)
			u.Publish = append(u.Publish, pp)
		}
		return u
	}
	open, _ := access.ParsePattern("open")
	pol := &access.Policy{Enabled: true, Realm: "test", Users: map[string]*access.User{
		"alice": mk("alice", "wonder", []string{"cam/*"}, []string{"pub"}, true),
		"basic": mk("basic", "only", []string{"*"}, nil, false),
	}, Anonymous: access.Permissions{Read: access.Patterns{open}}}
	bans := access.NewBans(access.BanConfig{MaxFailures: 3, Window: time.Minute, BanTime: time.Minute}, nil)
	s := &Server{cfg: ServerConfig{Auth: pol, Bans: bans, NonceLifetime: time.Minute, Logger: slog.New(slog.DiscardHandler)}, lim: newLimiter(Limits{}),
		verifier: access.NewVerifier(access.VerifierConfig{})}
	s.auth.Store(pol) // as NewServer does
	if _, err := rand.Read(s.nonceKey[:]); err != nil {
		t.Fatal(err)
	}
	c := &conn{s: s, remote: netip.MustParseAddrPort(remote), secure: secure, log: s.cfg.Logger}
	return &authFixture{s: s, c: c, pol: pol, bans: bans}
}

func (f *authFixture) req(method base.Method, url string, auth ...string) *base.Request {
	u, err := base.ParseURL(url)
	if err != nil {
		panic(err)
	}
	r := &base.Request{Method: method, URL: u, Header: base.Header{}}
	if len(auth) > 0 {
		r.Header["Authorization"] = base.HeaderValue{auth[0]}
	}
	return r
}

// digest answers the challenge of a 401 for user/password with algorithm alg.
func digest(t *testing.T, res *base.Response, method base.Method, uri, user, realm, pw string, alg headers.AuthAlgorithm) string {
	t.Helper()
	for _, v := range res.Header["WWW-Authenticate"] {
		var h headers.Authenticate
		if err := h.Unmarshal(base.HeaderValue{v}); err != nil || h.Method != headers.AuthMethodDigest || *h.Algorithm != alg {
			continue
		}
		name := access.MD5
		if alg == headers.AuthAlgorithmSHA256 {
			name = access.SHA256
		}
		resp := access.DigestHash(name, access.DigestHA1(name, user, realm, pw)+":"+h.Nonce+":"+access.DigestHash(name, string(method)+":"+uri))
		a := alg
		return headers.Authorization{Method: headers.AuthMethodDigest, Username: user, Realm: realm, Nonce: h.Nonce, URI: uri, Response: resp, Algorithm: &a}.Marshal()[0]
	}
	t.Fatalf("no %v digest challenge in %q", alg, res.Header["WWW-Authenticate"])
	return ""
}

func status(d *denial) int {
	if d == nil {
		return 200
	}
	return int(d.res.StatusCode)
}

func TestDecide(t *testing.T) {
	f := newAuthFixture(t, false, "192.0.2.10:5000")
	c := f.c
	url := "rtsp://h:8554/cam/1"
	// anonymous: allowed where the rules say so, challenged elsewhere
	if d := c.decide(f.req(base.Describe, "rtsp://h/open"), access.Read, "open"); d != nil {
		t.Fatalf("anonymous read of open: %d %s", status(d), d.reason)
	}
	d := c.decide(f.req(base.Describe, url), access.Read, "cam/1")
	if status(d) != 401 {
		t.Fatalf("no credentials: %d", status(d))
	}
	ch := strings.Join(d.res.Header["WWW-Authenticate"], " | ")
	if !strings.Contains(ch, `algorithm="SHA-256"`) || !strings.Contains(ch, `algorithm="MD5"`) || strings.Contains(ch, "Basic") ||
		strings.Index(ch, "SHA-256") > strings.Index(ch, "MD5") {
		t.Errorf("plain-RTSP challenge %q: want Digest SHA-256 then MD5, no Basic", ch)
	}
	for _, alg := range []headers.AuthAlgorithm{headers.AuthAlgorithmMD5, headers.AuthAlgorithmSHA256} {
		if d := c.decide(f.req(base.Describe, url, digest(t, d.res, base.Describe, url, "alice", "test", "wonder", alg)), access.Read, "cam/1"); d != nil {
			t.Errorf("digest %v: %d %s", alg, status(d), d.reason)
		}
	}
	if c.user != "alice" {
		t.Errorf("user %q after login", c.user)
	}
	// a response for one route does not open another
	other := digest(t, d.res, base.Describe, "rtsp://h:8554/cam/2", "alice", "test", "wonder", headers.AuthAlgorithmMD5)
	if d := c.decide(f.req(base.Describe, url, other), access.Read, "cam/1"); status(d) != 400 {
		t.Errorf("digest for another uri: %d", status(d))
	}
	// right password, no permission: 403, not a failure
	if d := c.decide(f.req(base.Describe, "rtsp://h/secret", digest(t, d.res, base.Describe, "rtsp://h/secret", "alice", "test", "wonder", headers.AuthAlgorithmMD5)), access.Read, "secret"); status(d) != 403 {
		t.Errorf("no read permission: %d", status(d))
	}
	pubURL := "rtsp://h/pub"
	if d := c.decide(f.req(base.Announce, pubURL, digest(t, d.res, base.Announce, pubURL, "alice", "test", "wonder", headers.AuthAlgorithmSHA256)), access.Publish, "pub"); d != nil {
		t.Errorf("publish: %d %s", status(d), d.reason)
	}
	// Basic over plain RTSP is refused without counting as a failure
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("basic:only"))
	if d := c.decide(f.req(base.Describe, url, basic), access.Read, "cam/1"); status(d) != 401 || !strings.Contains(d.reason, "plain") {
		t.Errorf("basic over plain: %d %v", status(d), d)
	}
	// a forged or foreign nonce is refused
	forged := strings.Replace(digest(t, d.res, base.Describe, url, "alice", "test", "wonder", headers.AuthAlgorithmMD5), `nonce="`, `nonce="00`, 1)
	if d := c.decide(f.req(base.Describe, url, forged), access.Read, "cam/1"); status(d) != 401 || !strings.Contains(d.reason, "nonce") {
		t.Errorf("forged nonce: %d %v", status(d), d)
	}
	if _, banned := f.bans.Banned(c.remote.Addr()); banned {
		t.Fatal("banned without a failed password")
	}
	// wrong passwords count; the third bans
	for i := range 3 {
		w := digest(t, d.res, base.Describe, url, "alice", "test", "wrong", headers.AuthAlgorithmMD5)
		if d := c.decide(f.req(base.Describe, url, w), access.Read, "cam/1"); status(d) != 401 {
			t.Errorf("wrong password %d: %d", i, status(d))
		}
	}
	good := digest(t, d.res, base.Describe, url, "alice", "test", "wonder", headers.AuthAlgorithmMD5)
	if d := c.decide(f.req(base.Describe, url, good), access.Read, "cam/1"); status(d) != 403 || !strings.Contains(d.reason, "banned") {
		t.Errorf("banned address with the right password: %d %v", status(d), d)
	}
}

func TestDecideTLSAndNonces(t *testing.T) {
	f := newAuthFixture(t, true, "[2001:db8::1]:5000")
	c := f.c
	url := "rtsp://h/cam/1"
	d := c.decide(f.req(base.Describe, url), access.Read, "cam/1")
	if ch := strings.Join(d.res.Header["WWW-Authenticate"], " | "); !strings.HasSuffix(ch, `Basic realm="test"`) {
		t.Errorf("TLS challenge %q lacks Basic", ch)
	}
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	if d := c.decide(f.req(base.Describe, url, basic("basic", "only")), access.Read, "cam/1"); d != nil {
		t.Errorf("basic over TLS: %d %s", status(d), d.reason)
	}
	if d := c.decide(f.req(base.Describe, url, basic("basic", "nope")), access.Read, "cam/1"); status(d) != 401 {
		t.Errorf("basic wrong password: %d", status(d))
	}
	if d := c.decide(f.req(base.Describe, url, basic("nobody", "x")), access.Read, "cam/1"); status(d) != 401 {
		t.Errorf("basic unknown user: %d", status(d))
	}
	// a user with only a password hash cannot use Digest
	if d := c.decide(f.req(base.Describe, url, digest(t, d.res, base.Describe, url, "basic", "test", "only", headers.AuthAlgorithmMD5)), access.Read, "cam/1"); status(d) != 401 {
		t.Errorf("digest for a hash-only user: %d", status(d))
	}

	now := time.Now()
	addr := c.remote.Addr()
	n := f.s.newNonce(addr, now)
	if v, fresh := f.s.checkNonce(n, addr, now.Add(30*time.Second)); !v || !fresh {
		t.Error("fresh nonce refused")
	}
	if v, fresh := f.s.checkNonce(n, addr, now.Add(2*time.Minute)); !v || fresh {
		t.Error("expired nonce still fresh")
	}
	if v, _ := f.s.checkNonce(n, netip.MustParseAddr("2001:db8::2"), now); v {
		t.Error("nonce valid from another address")
	}
	for _, bad := range []string{"", "zz", n[:len(n)-2], n + "00"} {
		if v, _ := f.s.checkNonce(bad, addr, now); v {
			t.Errorf("nonce %q valid", bad)
		}
	}
	// (three failures above banned the address; that is right, and shown here)
	if d := c.decide(f.req(base.Describe, url, basic("basic", "only")), access.Read, "cam/1"); status(d) != 403 {
		t.Errorf("after three failures: %d", status(d))
	}
	f = newAuthFixture(t, true, "[2001:db8::1]:5000")
	c = f.c
	// an expired nonce gets a stale challenge, so clients retry without asking the user
	old := f.s.newNonce(addr, now.Add(-2*time.Minute))
	resp := access.DigestHash(access.MD5, access.DigestHA1(access.MD5, "alice", "test", "wonder")+":"+old+":"+access.DigestHash(access.MD5, "DESCRIBE:"+url))
	h := headers.Authorization{Method: headers.AuthMethodDigest, Username: "alice", Realm: "test", Nonce: old, URI: url, Response: resp}.Marshal()[0]
	d = c.decide(f.req(base.Describe, url, h), access.Read, "cam/1")
	if status(d) != 401 || !strings.Contains(strings.Join(d.res.Header["WWW-Authenticate"], ""), `stale="true"`) {
		t.Errorf("expired nonce: %d %v", status(d), d.res.Header)
	}
}

func TestNoLoginMethodOverPlainRTSP(t *testing.T) {
	f := newAuthFixture(t, false, "192.0.2.30:1")
	delete(f.pol.Users, "alice") // only "basic" is left: no Digest HA1 anywhere
	d := f.c.decide(f.req(base.Describe, "rtsp://h/cam/1"), access.Read, "cam/1")
	if status(d) != 403 || len(d.res.Header["WWW-Authenticate"]) != 0 {
		t.Errorf("plain RTSP with Basic-only users: %d %v", status(d), d.res.Header)
	}
	f.c.secure = true
	if d := f.c.decide(f.req(base.Describe, "rtsp://h/cam/1"), access.Read, "cam/1"); status(d) != 401 {
		t.Errorf("same over TLS: %d", status(d))
	}
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		"Basic YWxpY2U6cGE6c3M=", "Basic !!", "basic YTpi",
		`Digest username="bob", realm="r", nonce="n", uri="rtsp://h/x", response="abc", algorithm="SHA-256"`,
		`Digest username="bob", realm="r", nonce="n", uri="/x", response="abc"`, `Digest username="`, "Digest", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cr, err := parseAuthorization(base.HeaderValue{s})
		if err != nil {
			return
		}
		if cr.basic && strings.Contains(cr.user, ":") {
			t.Fatalf("basic user %q contains ':'", cr.user)
		}
		if !cr.basic {
			authRoute(base.Setup, cr.uri)
			authRoute(base.Describe, cr.uri)
		}
	})
}

// TestConcurrentDigestGuesses: Digest guesses share the Basic accounting, so 20 wrong responses at
// once from one address get exactly max_failures 401s and 403 for the rest.
func TestConcurrentDigestGuesses(t *testing.T) {
	f := newAuthFixture(t, false, "192.0.2.40:1")
	url := "rtsp://h/cam/1"
	ch := f.c.decide(f.req(base.Describe, url), access.Read, "cam/1")
	const n = 20
	statuses := make(chan int, n)
	for range n {
		c := &conn{s: f.s, remote: f.c.remote, log: f.s.cfg.Logger}
		h := digest(t, ch.res, base.Describe, url, "alice", "test", "guess", headers.AuthAlgorithmSHA256)
		go func() { statuses <- status(c.decide(f.req(base.Describe, url, h), access.Read, "cam/1")) }()
	}
	got := map[int]int{}
	for range n {
		got[<-statuses]++
	}
	if got[401] != 3 || got[403] != n-3 {
		t.Errorf("statuses %v, want 3 × 401 and %d × 403", got, n-3)
	}
}
