package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/meshgw/meshgw/gateway/ops"
	"github.com/meshgw/meshgw/internal/gwtest"
	"github.com/meshgw/meshgw/internal/peertest"
)

// apiClient calls the REST API of a gateway and checks every answer against the OpenAPI
// document (gateway/ops/openapi.yaml) with kin-openapi's response validator.
type apiClient struct {
	t      *testing.T
	base   string
	doc    *openapi3.T
	router routers.Router
	hc     *http.Client
}

func newAPIClient(t *testing.T, base string) *apiClient {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(ops.OpenAPI)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	// Match requests to this gateway's listener, not the document's example server.
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &apiClient{t: t, base: base, doc: doc, router: router, hc: &http.Client{Timeout: 30 * time.Second}}
}

// viewerToken is the viewer's bearer token; the config holds its SHA-256.
const viewerToken = "kZ3u0Yq1c9wE4rT7pX2mVb8nL5sA6dFh"

// call sends method path with Basic credentials (none when user is ""), fails the test unless
// the status is want, validates the answer against the document and returns the body.
func (c *apiClient) call(method, path, user, pw string, want int) []byte {
	c.t.Helper()
	return c.send(method, path, want, func(req *http.Request) {
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
	})
}

// callBearer is call with a bearer token.
func (c *apiClient) callBearer(method, path, token string, want int) []byte {
	c.t.Helper()
	return c.send(method, path, want, func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+token) })
}

func (c *apiClient) send(method, path string, want int, auth func(*http.Request)) []byte {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	auth(req)
	user, _, _ := req.BasicAuth()
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if res.StatusCode != want {
		c.t.Fatalf("%s %s as %q: status %d, want %d: %s", method, path, user, res.StatusCode, want, body)
	}
	c.validate(req, res, body)
	return body
}

// validate checks one answer against the document: the operation's response for its status,
// headers and body schema. An answer to a method the path does not have (405) is checked
// against the Error schema.
func (c *apiClient) validate(req *http.Request, res *http.Response, body []byte) {
	c.t.Helper()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if res.StatusCode != http.StatusMethodNotAllowed {
			c.t.Errorf("%s %s: not in the OpenAPI document: %v", req.Method, req.URL.Path, err)
			return
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			c.t.Errorf("%s %s: 405 body is not JSON: %v: %s", req.Method, req.URL.Path, err, body)
			return
		}
		if err := c.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
			c.t.Errorf("%s %s: 405 body does not match Error: %v", req.Method, req.URL.Path, err)
		}
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Errorf("%s %s (%d) does not match the OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
}

// get calls GET path as the admin user and decodes the body into v.
func (c *apiClient) get(path string, v any) {
	c.t.Helper()
	if err := json.Unmarshal(c.call(http.MethodGet, path, "ops", "ops-pw", http.StatusOK), v); err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
}

// apiSessions is the part of /v1/sessions the tests read.
type apiSessions struct {
	Sessions []struct {
		ID, Kind, Route, Transport, Node, Remote, User string
		Started                                        *time.Time
	}
}

// TestAPIEndpoints runs a gateway with an api: listener, two ffmpeg readers (TCP and UDP) and
// an ffmpeg publisher, calls every endpoint and validates every answer (200s and errors)
// against the OpenAPI document; kicks both readers and sees each ffmpeg exit; checks that
// unauthenticated and wrong-role requests are refused with 401/403 and that refusals and
// mutations are logged.
func TestAPIEndpoints(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	var logs peertest.LogBuffer
	apiAddr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	g := gwtest.StartLogged(t, `rtsp:
  listen: LISTEN
auth:
  realm: `+authRealm+`
  anonymous: {read: [demo], publish: [pub]}
  users:
`+authUser(t, "ops", "ops-pw", "argon2id", false, "      api: admin\n")+
		authUser(t, "viewer", "view-pw", "argon2id", false, "      api: read\n      api_token_sha256: "+fmt.Sprintf("%x", sha256.Sum256([]byte(viewerToken)))+"\n")+`api:
  listen: "`+apiAddr+`"
routes:
  demo: {source: demo}
  pub: {source: publisher}
`, logs.Logger())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", playTail(logs.String(), 6000))
		}
	})
	c := newAPIClient(t, "http://"+apiAddr)
	ctx := context.Background()

	ffTCP := peertest.Run(ctx, t, "ffmpeg", playFFmpegArgs("tcp", g.URL+"demo", 60)...)
	ffUDP := peertest.Run(ctx, t, "ffmpeg", playFFmpegArgs("udp", g.URL+"demo", 60)...)
	pub := peertest.Run(ctx, t, "ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "warning",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "60",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p", "-an",
		"-f", "rtsp", "-rtsp_transport", "tcp", g.URL+"pub")

	// Every reader and the publisher show up.
	var sess apiSessions
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.get("/v1/sessions", &sess)
		kinds := map[string]int{}
		for _, s := range sess.Sessions {
			kinds[s.Kind+"/"+s.Transport]++
		}
		if kinds["reader/tcp"] == 1 && kinds["reader/udp"] == 1 && kinds["publisher/tcp"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions after 30 s: %+v, want a TCP and a UDP reader and a TCP publisher\nffmpeg tcp: %s\nffmpeg udp: %s\npublisher: %s",
				sess.Sessions, ffTCP.Tail(10), ffUDP.Tail(10), pub.Tail(10))
		}
		time.Sleep(300 * time.Millisecond)
	}
	ids := map[string]string{}
	for _, s := range sess.Sessions {
		if s.Started == nil || time.Since(*s.Started) > time.Minute {
			t.Errorf("session %s started %v, want within the last minute", s.ID, s.Started)
		}
		if !strings.HasPrefix(s.Remote, "127.0.0.1:") {
			t.Errorf("session %s remote %q, want 127.0.0.1:PORT", s.ID, s.Remote)
		}
		if s.Kind == "reader" {
			ids[s.Transport] = s.ID
			if s.Route != "demo" || s.Node == "" {
				t.Errorf("reader %+v: want route demo and a serving node", s)
			}
		} else if s.Route != "pub" {
			t.Errorf("publisher %+v: want route pub", s)
		} else {
			ids["publisher"] = s.ID
		}
	}

	var info struct{ Version, Role, Node string }
	c.get("/v1/info", &info)
	if info.Role != "run" || info.Node == "" || info.Version == "" {
		t.Errorf("info %+v: want role run, a node name and a version", info)
	}
	var routes struct {
		Routes []struct {
			Name, State string
			Readers     int
			Publishers  int
			In          struct{ Packets uint64 }
		}
	}
	c.get("/v1/routes", &routes)
	got := map[string]string{}
	for _, r := range routes.Routes {
		got[r.Name] = fmt.Sprintf("%s/%d/%d", r.State, r.Readers, r.Publishers)
		if r.Name == "demo" && r.In.Packets == 0 {
			t.Errorf("route demo: no packets counted in") // (interleaved publishers are not counted)
		}
	}
	if got["demo"] != "live/2/0" || got["pub"] != "live/0/1" {
		t.Errorf("routes state/readers/publishers %v, want demo live/2/0 and pub live/0/1", got)
	}
	var streams struct {
		Streams []struct {
			Name       string
			Readers    map[string]int
			Tracks     []struct{ Codec string }
			BitrateIn  *float64 `json:"bitrate_in_bps"`
			BitrateOut *float64 `json:"bitrate_out_bps"`
			PacketsIn  *float64 `json:"packet_rate_in"`
			PacketsOut *float64 `json:"packet_rate_out"`
		}
	}
	c.get("/v1/streams", &streams)
	for _, st := range streams.Streams {
		if st.Name != "demo" {
			continue
		}
		if st.Readers["tcp"] != 1 || st.Readers["udp"] != 1 || len(st.Tracks) == 0 {
			t.Errorf("stream demo: readers %v, %d tracks; want 1 tcp, 1 udp and its tracks", st.Readers, len(st.Tracks))
		}
		// Packets flow in and out to the two readers. (The demo source counts packets, not
		// bytes, so only the way out has a bitrate.)
		if st.PacketsIn == nil || *st.PacketsIn <= 0 || st.PacketsOut == nil || *st.PacketsOut <= 0 || st.BitrateOut == nil || *st.BitrateOut <= 0 {
			t.Errorf("stream demo: %s packets/s in, %s packets/s and %s out; want all > 0",
				fmtRate(st.PacketsIn), fmtRate(st.PacketsOut), fmtRate(st.BitrateOut))
		} else {
			t.Logf("demo: %.0f packets/s in; %.0f packets/s, %.0f bit/s out to 2 readers", *st.PacketsIn, *st.PacketsOut, *st.BitrateOut)
		}
	}
	var nodes struct {
		Nodes []struct {
			Name  string
			Up    bool
			Local bool
		}
	}
	c.get("/v1/nodes", &nodes)
	if len(nodes.Nodes) != 1 || !nodes.Nodes[0].Up || !nodes.Nodes[0].Local || nodes.Nodes[0].Name != info.Node {
		t.Errorf("nodes %+v: want the one local node %q, up", nodes.Nodes, info.Node)
	}
	var relays struct{ Relays []json.RawMessage }
	c.get("/v1/relays", &relays)
	if len(relays.Relays) != 0 {
		t.Errorf("%d relays in a one-node gateway, want none", len(relays.Relays))
	}
	doc := c.call(http.MethodGet, "/v1/openapi.yaml", "viewer", "view-pw", http.StatusOK)
	if string(doc) != string(ops.OpenAPI) {
		t.Errorf("/v1/openapi.yaml is not the embedded document")
	}

	// The UDP reader's RTCP receiver reports reach its session.
	deadline = time.Now().Add(20 * time.Second)
	for {
		var rx struct {
			Sessions []struct {
				ID        string
				Reception *struct {
					Reports uint64
					Jitter  float64 `json:"jitter_seconds"`
				}
			}
		}
		c.get("/v1/sessions", &rx)
		var got *struct {
			Reports uint64
			Jitter  float64 `json:"jitter_seconds"`
		}
		for _, s := range rx.Sessions {
			if s.ID == ids["udp"] {
				got = s.Reception
			}
		}
		if got != nil && got.Reports > 0 {
			t.Logf("UDP reader's receiver reports: %d, jitter %.1f ms", got.Reports, got.Jitter*1000)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no receiver report figures for the UDP reader %s after 20 s", ids["udp"])
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A bearer token works like the viewer's password: reads, no actions.
	c.callBearer(http.MethodGet, "/v1/routes", viewerToken, http.StatusOK)
	c.callBearer(http.MethodPost, "/v1/sessions/"+ids["udp"]+"/kick", viewerToken, http.StatusForbidden)
	c.callBearer(http.MethodGet, "/v1/routes", "not-the-token", http.StatusUnauthorized)

	// Refusals: no or wrong credentials 401, a read-only user's action 403; each logged.
	c.call(http.MethodGet, "/v1/sessions", "", "", http.StatusUnauthorized)
	c.call(http.MethodGet, "/v1/sessions", "ops", "wrong", http.StatusUnauthorized)
	c.call(http.MethodPost, "/v1/sessions/"+ids["tcp"]+"/kick", "viewer", "view-pw", http.StatusForbidden)
	c.call(http.MethodPost, "/v1/reload", "viewer", "view-pw", http.StatusForbidden)
	c.call(http.MethodGet, "/v1/sessions/"+ids["tcp"]+"/kick", "ops", "ops-pw", http.StatusMethodNotAllowed)
	c.call(http.MethodPost, "/v1/sessions/no-such-session/kick", "ops", "ops-pw", http.StatusNotFound)
	c.call(http.MethodPost, "/v1/reload", "ops", "ops-pw", http.StatusNotImplemented) // gwtest has no config file
	for _, re := range []string{
		`level=WARN msg="api request refused" component=api status=401 method=GET path=/v1/sessions .*reason=`,
		`level=WARN msg="api request refused" component=api status=403 method=POST path=/v1/sessions/` + ids["tcp"] + `/kick user=viewer`,
		`level=WARN msg="api request refused" component=api status=403 method=POST path=/v1/reload user=viewer`,
	} {
		if !regexp.MustCompile(re).MatchString(logs.String()) {
			t.Errorf("no log line matching %s", re)
		}
	}
	if ffTCP.Exited() || ffUDP.Exited() {
		t.Fatalf("a reader ended before the kick: tcp %s / udp %s", ffTCP.Tail(5), ffUDP.Tail(5))
	}

	// Kick both readers and the publisher: each ffmpeg sees its connection close and exits,
	// long before -t 60.
	for _, r := range []struct {
		transport string
		p         *peertest.Proc
	}{{"tcp", ffTCP}, {"udp", ffUDP}, {"publisher", pub}} {
		var ans struct{ Kicked string }
		kicked := time.Now()
		if err := json.Unmarshal(c.call(http.MethodPost, "/v1/sessions/"+ids[r.transport]+"/kick", "ops", "ops-pw", http.StatusOK), &ans); err != nil || ans.Kicked != ids[r.transport] {
			t.Fatalf("kick answer %+v (%v), want kicked %q", ans, err, ids[r.transport])
		}
		if err := r.p.Wait(15 * time.Second); r.p.Exited() {
			t.Logf("ffmpeg %s exited %v after the kick (exit code %d, %v)", r.transport, time.Since(kicked).Round(time.Millisecond), r.p.ExitCode(), err)
		} else {
			t.Errorf("ffmpeg %s still running 15 s after its session was kicked", r.transport)
		}
		re := `level=INFO msg="api request" component=api method=POST path=/v1/sessions/` + ids[r.transport] + `/kick user=ops`
		if !regexp.MustCompile(re).MatchString(logs.String()) {
			t.Errorf("the kick was not logged: no line matching %s", re)
		}
	}
	c.get("/v1/sessions", &sess)
	for _, s := range sess.Sessions {
		if s.ID == ids["tcp"] || s.ID == ids["udp"] || s.ID == ids["publisher"] {
			t.Errorf("kicked session %s still listed", s.ID)
		}
	}
	c.call(http.MethodPost, "/v1/sessions/"+ids["tcp"]+"/kick", "ops", "ops-pw", http.StatusNotFound)
}

func fmtRate(v *float64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprintf("%.0f", *v)
}
