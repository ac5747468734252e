package ops

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// TestOpenAPIDocumentIsValid: the embedded document is a valid OpenAPI 3 document (the e2e test
// checks the live answers against it).
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/info", "/v1/routes", "/v1/streams", "/v1/sessions", "/v1/nodes", "/v1/relays",
		"/v1/sessions/{id}/kick", "/v1/reload", "/v1/openapi.yaml"} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("document lacks %s", p)
		}
	}
}

func TestRelayHealth(t *testing.T) {
	for _, c := range []struct {
		name string
		r    Relay
		up   bool
		want string
	}{
		{"nothing yet", Relay{}, true, "unknown"},
		{"packets, nothing measured", Relay{Packets: 10}, true, "unknown"},
		{"repair counts, no loss", Relay{Packets: 1000, Repair: true}, true, "good"},
		{"0.4% lost before repair", Relay{Packets: 996, Repair: true, LostBefore: 4}, true, "good"},
		{"1% lost before repair", Relay{Packets: 990, Repair: true, LostBefore: 10, LostAfter: 0}, true, "degraded"},
		{"6% lost before repair", Relay{Packets: 940, Repair: true, LostBefore: 60}, true, "bad"},
		{"2022-7 leg losing 10%", Relay{Packets: 900, Legs: &LegCounters{Received: 900, Lost: 100}}, true, "bad"},
		{"clean 2022-7 leg", Relay{Packets: 900, Legs: &LegCounters{Received: 900}}, true, "good"},
		{"node down", Relay{Packets: 1000, Repair: true}, false, "bad"},
	} {
		if got := relayHealth(c.r.Packets, lossRatio(c.r), c.up); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if r := lossRatio(Relay{Packets: 90, Repair: true, LostBefore: 10}); r == nil || *r != 0.1 {
		t.Errorf("loss ratio of 10 lost in 100: %v", r)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"demo":                         "demo",
		"rtsp://cam:554/s":             "rtsp://cam:554/s",
		"rtsp://u:secret@cam:554/s":    "rtsp://u:xxxxx@cam:554/s",
		"rtsp://u@cam/s":               "rtsp://u@cam/s",
		"publisher":                    "publisher",
		"rtsp://u:p%40ss@cam/s?x=y@z":  "rtsp://u:xxxxx@cam/s?x=y@z",
		"::not a url with a @ in it::": "::not a url with a @ in it::",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(redact(in), "secret") {
			t.Errorf("redact(%q) kept the password", in)
		}
	}
}

// TestStreamsBitrate: the bitrate is the byte counters' growth between two snapshots over the
// time between them.
func TestStreamsBitrate(t *testing.T) {
	src := &fixedSource{snap: Snapshot{Streams: []Stream{{Name: "cam", State: "live", In: Counters{Bytes: 1000}, Out: Counters{Bytes: 5000}}}}}
	s, _ := start(t, Config{Source: src})
	c := &http.Client{Timeout: 10 * time.Second}
	type answer struct {
		Streams []struct {
			Name       string
			BitrateIn  *float64 `json:"bitrate_in_bps"`
			BitrateOut *float64 `json:"bitrate_out_bps"`
		}
	}
	get := func() answer {
		code, body := do(t, c, "GET", s.URL()+"/v1/streams")
		if code != 200 {
			t.Fatalf("GET /v1/streams: %d %s", code, body)
		}
		var a answer
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	// First call: two snapshots 0.25 s apart, counters unchanged.
	if a := get(); len(a.Streams) != 1 || a.Streams[0].BitrateIn == nil || *a.Streams[0].BitrateIn != 0 {
		t.Fatalf("first answer %+v, want bitrate 0", a)
	}
	first := time.Now()
	time.Sleep(time.Second)
	src.mu.Lock()
	src.snap.Streams[0].In.Bytes += 125_000 // 1 Mbit
	src.snap.Streams[0].Out.Bytes += 250_000
	src.mu.Unlock()
	a := get()
	elapsed := time.Since(first).Seconds()
	in, out := *a.Streams[0].BitrateIn, *a.Streams[0].BitrateOut
	// The window is between the two answers: at least 1 s, at most elapsed.
	if in > 1e6*1.01 || in < 1e6/elapsed*0.99 || math.Abs(out-2*in) > 1 {
		t.Errorf("bitrate in %.0f out %.0f bit/s, want 1 Mbit over %.2f..1 s (in %.0f..%.0f) and out twice in", in, out, elapsed, 1e6/elapsed, 1e6)
	}
	// A counter going back (a restarted flow) gives no rate rather than a huge one.
	src.mu.Lock()
	src.snap.Streams[0].In.Bytes = 10
	src.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	if a := get(); a.Streams[0].BitrateIn != nil {
		t.Errorf("bitrate after a counter reset %v, want null", *a.Streams[0].BitrateIn)
	}
}

// TestAPIErrorsAreJSON: wrong methods, unknown paths, unknown sessions and a source without
// sessions all answer JSON errors; the page is served with its assets and a strict CSP.
func TestAPIErrorsAreJSON(t *testing.T) {
	src := &fixedSource{snap: Snapshot{Role: "node", Node: "n1", Sessions: []Session{{ID: "rs-1", Kind: "reader", Remote: netip.MustParseAddrPort("10.0.0.1:5000")}}}}
	s, logs := start(t, Config{Source: src})
	c := &http.Client{Timeout: 10 * time.Second}
	for _, r := range []struct {
		method, path string
		code         int
	}{
		{"POST", "/v1/routes", 405},
		{"GET", "/v1/sessions/rs-1/kick", 405},
		{"GET", "/v1/reload", 405},
		{"GET", "/v1/nothing", 404},
		{"POST", "/v1/sessions/rs-1/kick", 404}, // fixedSource is no Kicker
		{"POST", "/v1/reload", 501},
	} {
		code, body := do(t, c, r.method, s.URL()+r.path)
		var e struct{ Error string }
		if code != r.code || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %q, want %d with a JSON error", r.method, r.path, code, body, r.code)
		}
	}
	if !strings.Contains(logs.String(), `msg="api request" component=api method=POST path=/v1/sessions/rs-1/kick`) {
		t.Errorf("kick attempt not logged:\n%s", logs.String())
	}
	for path, want := range map[string]string{"/": "<svg id=\"mesh\"", "/page.js": "setTimeout(poll", "/page.css": ".link.bad"} {
		req, _ := http.NewRequest("GET", s.URL()+path, nil)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(b), want) || !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: %d, CSP %q, body lacks %q", path, res.StatusCode, res.Header.Get("Content-Security-Policy"), want)
		}
	}
}

// FuzzRedact: any source string is answered without a panic, and a password the URL parser
// finds never comes out.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"demo", "rtsp://u:secret@cam:554/s", "rtsp://u@cam/s", "rtsp://[::1]:554/x", "a@b", "rtsp://u:p@@h/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := redact(s)
		u, err := url.Parse(s)
		if err != nil || u.User == nil {
			if out != s {
				t.Fatalf("redact(%q) = %q, want it unchanged", s, out)
			}
			return
		}
		if pw, ok := u.User.Password(); ok && pw != "" && pw != "xxxxx" {
			if ru, err := url.Parse(out); err != nil || ru.User == nil {
				t.Fatalf("redact(%q) = %q, not a URL with its user", s, out)
			} else if got, _ := ru.User.Password(); got != "xxxxx" {
				t.Fatalf("redact(%q) = %q keeps password %q", s, out, got)
			}
		}
	})
}

// TestReloadAnswersMatchDocument: the reload endpoint's 204 and 422 (a hook refusing the new
// file) match the OpenAPI document; the e2e test covers the other answers on a live gateway.
func TestReloadAnswersMatchDocument(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	s, _ := start(t, Config{Source: &fixedSource{}, Reload: func(context.Context) error {
		calls++
		if calls > 1 {
			return errors.New("t.yaml:3: bad key")
		}
		return nil
	}})
	doc.Servers = openapi3.Servers{{URL: s.URL()}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	for _, want := range []int{http.StatusNoContent, http.StatusUnprocessableEntity} {
		req, _ := http.NewRequest("POST", s.URL()+"/v1/reload", nil)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("reload: %d %s, want %d", res.StatusCode, body, want)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 res.StatusCode, Header: res.Header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true},
		}
		in.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("reload %d: %v (body %s)", res.StatusCode, err, body)
		}
		if want == http.StatusUnprocessableEntity && !strings.Contains(string(body), "t.yaml:3: bad key") {
			t.Errorf("422 body %s lacks the hook's error", body)
		}
	}
}
