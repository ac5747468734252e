package hls

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/internal/routetest"
	"github.com/meshgw/meshgw/rtsp/access"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, "http://" + ln.Addr().String() + "/"
}

func get(t *testing.T, url, auth string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := &http.Client{Timeout: 15 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	c.CloseIdleConnections()
	return res.StatusCode, res.Header, string(b)
}

// TestServeAndIdleStop serves the demo route's playlists, then stops the muxer (and closes its
// reader) once no request came for IdleStop.
func TestServeAndIdleStop(t *testing.T) {
	d := routetest.StartDemo(t)
	s, base := startServer(t, Config{Handler: d, Muxing: Muxing{IdleStop: time.Second, AllowOrigin: "*"}})
	code, h, index := get(t, base+"demo/index.m3u8", "")
	if code != http.StatusOK || !strings.Contains(index, "video1_stream.m3u8") || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("index.m3u8: %d %q %v", code, index, h)
	}
	code, _, pl := get(t, base+"demo/video1_stream.m3u8", "")
	if code != http.StatusOK || !strings.Contains(pl, "#EXT-X-PART:") {
		t.Fatalf("media playlist: %d\n%s", code, pl)
	}
	st := s.Stats()
	if len(st.Muxers) != 1 || st.Muxers[0].Playlists != 2 || st.Muxers[0].Tracks != 2 || st.MuxersStarted != 1 {
		t.Fatalf("stats %+v", st)
	}
	if n := d.Opens.Load(); n != 1 {
		t.Fatalf("%d readers opened for two requests, want 1", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Stats().Muxers) > 0 || d.Closes.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("muxer still running 10 s after its last request (idle_stop 1s): %+v, reader closes %d", s.Stats(), d.Closes.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := s.Stats(); st.Requests != 2 || st.BytesSent == 0 {
		t.Errorf("totals after the stop: %+v, want 2 requests and their bytes", st)
	}
	// the next request starts a new muxer
	if code, _, _ := get(t, base+"demo/index.m3u8", ""); code != http.StatusOK || d.Opens.Load() != 2 {
		t.Fatalf("after idle stop: %d, opens %d", code, d.Opens.Load())
	}
}

// TestRefusals: unknown routes, paths that name no HLS file and other methods.
func TestRefusals(t *testing.T) {
	d := routetest.StartDemo(t)
	_, base := startServer(t, Config{Handler: d})
	for _, tc := range []struct {
		path string
		code int
		msg  string
	}{
		{"nope/index.m3u8", 404, `no route matches "nope"`},
		{"demo/", 404, "not an HLS path"},
		{"demo/../x/index.m3u8", 404, ""},
		{"index.m3u8", 404, "not an HLS path"},
		{"demo/abc_seg999.mp4", 404, "no such HLS file"},
	} {
		code, _, body := get(t, base+tc.path, "")
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: %d %q, want %d %q", tc.path, code, body, tc.code, tc.msg)
		}
	}
	res, err := http.Post(base+"demo/index.m3u8", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", res.StatusCode)
	}
}

func basic(u, p string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
}

// TestAuth: 401 with a Basic challenge, 403 without permission, Basic refused over plain HTTP
// unless allowed, and a verified password is not hashed again for every request.
func TestAuth(t *testing.T) {
	d := routetest.StartDemo(t)
	enc, err := access.HashBcrypt("pw")
	if err != nil {
		t.Fatal(err)
	}
	h, err := access.ParsePasswordHash(enc)
	if err != nil {
		t.Fatal(err)
	}
	read, _ := access.ParsePattern("demo")
	p := &access.Policy{Enabled: true, Realm: "r", AllowBasicPlain: true,
		Users: map[string]*access.User{"v": {Name: "v", Password: h, Permissions: access.Permissions{Read: access.Patterns{read}}},
			"x": {Name: "x", Password: h}}}
	v := access.NewVerifier(access.VerifierConfig{})
	_, base := startServer(t, Config{Handler: d, Auth: p, Verifier: v})
	url := base + "demo/index.m3u8"
	code, hd, _ := get(t, url, "")
	if code != 401 || hd.Get("WWW-Authenticate") != `Basic realm="r", charset="UTF-8"` {
		t.Errorf("no credentials: %d %q", code, hd.Get("WWW-Authenticate"))
	}
	if code, _, _ := get(t, url, basic("v", "bad")); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	if code, _, _ := get(t, url, basic("x", "pw")); code != 403 {
		t.Errorf("no read permission: %d", code)
	}
	if code, _, _ := get(t, url, "Digest x"); code != 400 {
		t.Errorf("not Basic: %d", code)
	}
	before := v.Runs()
	for i := 0; i < 5; i++ {
		if code, _, body := get(t, url, basic("v", "pw")); code != 200 {
			t.Fatalf("reader: %d %s", code, body)
		}
	}
	if n := v.Runs() - before; n != 1 {
		t.Errorf("%d password hashes for 5 requests with the same credentials, want 1", n)
	}
	strict := *p
	strict.AllowBasicPlain = false
	_, base2 := startServer(t, Config{Handler: d, Auth: &strict, Verifier: v})
	if code, _, body := get(t, base2+"demo/index.m3u8", basic("v", "pw")); code != 403 || !strings.Contains(body, "plain HTTP") {
		t.Errorf("Basic over plain HTTP without allow_basic_plain: %d %q", code, body)
	}
}

func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"/demo/index.m3u8", "/a/b/x_video1_stream.m3u8", "/d/p_video1_seg3.mp4", "/d/p_main_seg3.ts",
		"/d/p_video1_part9.mp4", "/d/p_video1_init.mp4", "//index.m3u8", "/../index.m3u8", "/index.m3u8", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		route, file, _, ok := splitPath(p)
		if !ok {
			return
		}
		if route == "" || strings.HasPrefix(route, "/") || strings.HasSuffix(route, "/") || strings.Contains(route, "//") ||
			strings.Contains(file, "/") || "/"+route+"/"+file != p {
			t.Fatalf("splitPath(%q) = %q, %q", p, route, file)
		}
		for _, el := range strings.Split(route, "/") {
			if el == "." || el == ".." {
				t.Fatalf("splitPath(%q) let %q through", p, el)
			}
		}
	})
}

func FuzzParseBasic(f *testing.F) {
	f.Add(basic("u", "p:w"))
	f.Add("Basic !!")
	f.Add("Digest a=b")
	f.Add("basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")))
	f.Fuzz(func(t *testing.T, h string) {
		u, p, err := parseBasic(h)
		if err != nil {
			return
		}
		if strings.Contains(u, ":") {
			t.Fatalf("user %q contains a colon", u)
		}
		if got, _, err := parseBasic(basic(u, p)); err != nil || got != u {
			t.Fatalf("round trip of %q:%q: %q %v", u, p, got, err)
		}
	})
}

// TestHTTPS serves over TLS, where Basic credentials need no allow_basic_plain.
func TestHTTPS(t *testing.T) {
	d := routetest.StartDemo(t)
	srvTLS, pool := peertest.SelfSignedTLS(t)
	enc, err := access.HashBcrypt("pw")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := access.ParsePasswordHash(enc)
	read, _ := access.ParsePattern("demo")
	p := &access.Policy{Enabled: true, Realm: "r",
		Users: map[string]*access.User{"v": {Name: "v", Password: h, Permissions: access.Permissions{Read: access.Patterns{read}}}}}
	_, base := startServer(t, Config{Handler: d, Auth: p, TLSConfig: srvTLS})
	url := strings.Replace(base, "http://", "https://", 1) + "demo/index.m3u8"
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	for _, tc := range []struct {
		auth string
		code int
	}{{"", 401}, {basic("v", "pw"), 200}} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.code {
			t.Errorf("HTTPS with %q: %d %s, want %d", tc.auth, res.StatusCode, body, tc.code)
		}
	}
}
