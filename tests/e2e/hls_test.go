package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/peertest"
)

// hlsGateway starts a gateway whose config (YAML) may use HLSLISTEN for a free loopback address of
// the hls: listener; it returns the gateway and the HLS base URL ("http://127.0.0.1:PORT/").
func hlsGateway(t testing.TB, yaml string) (*gw, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	g := startGateway(t, strings.ReplaceAll(yaml, "HLSLISTEN", addr))
	return g, "http://" + addr + "/"
}

// httpGet fetches url with optional Basic credentials ("user:pass") and returns status, headers
// and body.
func httpGet(t testing.TB, url, cred string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u, p, ok := strings.Cut(cred, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return res.StatusCode, res.Header, string(b)
}

// mediaPlaylist fetches a route's multivariant playlist and then its first media playlist.
func mediaPlaylist(t testing.TB, base, route, cred string) string {
	t.Helper()
	code, _, index := httpGet(t, base+route+"/index.m3u8", cred)
	if code != http.StatusOK {
		t.Fatalf("index.m3u8 of %s: %d %s", route, code, index)
	}
	m := regexp.MustCompile(`(?m)^(\S+_stream\.m3u8)\s*$`).FindStringSubmatch(index)
	if m == nil {
		t.Fatalf("index.m3u8 of %s names no media playlist:\n%s", route, index)
	}
	code, _, pl := httpGet(t, base+route+"/"+m[1], cred)
	if code != http.StatusOK {
		t.Fatalf("%s of %s: %d %s", m[1], route, code, pl)
	}
	return pl
}

// ffprobeCodecs lists the codecs ffprobe finds at url.
func ffprobeCodecs(t testing.TB, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := peertest.Run(ctx, t, "ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", url)
	out := p.MustSucceed(30 * time.Second)
	var codecs []string
	for _, l := range strings.Fields(out) {
		codecs = append(codecs, strings.Trim(l, ","))
	}
	return codecs
}

// ffmpegHLS decodes secs seconds of an HLS URL with ffmpeg and returns the video frames decoded and
// ffmpeg's lines at level error (there must be none).
func ffmpegHLS(t testing.TB, url string, secs int) (int, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+25)*time.Second)
	defer cancel()
	p := peertest.Run(ctx, t, "ffmpeg", "-nostats", "-v", "error", "-stats", "-i", url, "-t", fmt.Sprint(secs), "-map", "0:v:0", "-f", "null", "-")
	out := p.MustSucceed(time.Duration(secs+25) * time.Second)
	n, _ := peertest.FFmpegFrames(out)
	var errs []string
	for _, l := range strings.Split(strings.ReplaceAll(out, "\r", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "frame=") && !strings.HasPrefix(l, "[out#") {
			errs = append(errs, l)
		}
	}
	return n, errs
}

// TestHLSLowLatencyDemo reads the demo route over LL-HLS with ffprobe (H.264 and AAC) and with
// ffmpeg for 10 s (every frame decoded, no error), checks the playlist's Low-Latency parts and a
// blocking reload, and reads the muxer's counters.
func TestHLSLowLatencyDemo(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe")
	g, base := hlsGateway(t, `rtsp:
  listen: LISTEN
hls:
  listen: HLSLISTEN
routes:
  demo: {source: demo}
`)
	url := base + "demo/index.m3u8"
	if got := strings.Join(ffprobeCodecs(t, url), ","); !strings.Contains(got, "h264") || !strings.Contains(got, "aac") {
		t.Fatalf("ffprobe found codecs %q, want h264 and aac", got)
	}
	pl := mediaPlaylist(t, base, "demo", "")
	for _, want := range []string{"#EXT-X-PART:", "#EXT-X-PART-INF:PART-TARGET=", "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES", "#EXT-X-PRELOAD-HINT:TYPE=PART", "#EXT-X-MAP:URI="} {
		if !strings.Contains(pl, want) {
			t.Errorf("LL-HLS media playlist lacks %s:\n%s", want, pl)
		}
	}
	// a blocking reload for the next media sequence number returns once it exists
	seq := regexp.MustCompile(`(?m)^\S+_seg(\d+)\.mp4\s*$`).FindAllStringSubmatch(pl, -1)
	if len(seq) == 0 {
		t.Fatalf("no segment in the playlist:\n%s", pl)
	}
	var next int
	fmt.Sscan(seq[len(seq)-1][1], &next)
	next++
	media := regexp.MustCompile(`(?m)^(\S+_stream\.m3u8)\s*$`).FindStringSubmatch(func() string { _, _, b := httpGet(t, url, ""); return b }())[1]
	start := time.Now()
	code, _, blocked := httpGet(t, fmt.Sprintf("%sdemo/%s?_HLS_msn=%d&_HLS_part=0", base, media, next), "")
	if code != http.StatusOK || !strings.Contains(blocked, fmt.Sprintf("_seg%d.mp4", next-1)) {
		t.Errorf("blocking reload for msn %d: %d after %v\n%s", next, code, time.Since(start), blocked)
	}

	frames, errs := ffmpegHLS(t, url, 10)
	t.Logf("ffmpeg decoded %d video frames in 10 s of LL-HLS", frames)
	if frames < 200 { // 25 fps
		t.Errorf("ffmpeg decoded %d frames of 10 s at 25 fps, want at least 200", frames)
	}
	if len(errs) > 0 {
		t.Errorf("ffmpeg reported errors:\n%s", strings.Join(errs, "\n"))
	}
	st := g.HLS.Stats()
	if len(st.Muxers) != 1 {
		t.Fatalf("stats: %d muxers, want 1: %+v", len(st.Muxers), st)
	}
	m := st.Muxers[0]
	t.Logf("muxer stats: %+v", m)
	if m.Route != "demo" || m.Tracks != 2 || m.Segments+m.Parts == 0 || m.Playlists == 0 || m.BytesSent == 0 || m.PacketsIn == 0 || m.Errors != 0 || m.Dropped != 0 {
		t.Errorf("muxer stats %+v: want route demo, 2 tracks, segments or parts, playlists, bytes and packets served, no errors or drops", m)
	}
}

// TestHLSCameraOpus plays an on-demand GstRtspServer camera route (H.264 and Opus) over LL-HLS
// with ffprobe and ffmpeg.
func TestHLSCameraOpus(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe")
	cam := peertest.StartCamera(t, peertest.CameraOpts{Audio: "opus", GOP: 25})
	_, base := hlsGateway(t, `rtsp:
  listen: LISTEN
hls:
  listen: HLSLISTEN
routes:
  cam: {source: `+cam.URL()+`, source_transport: tcp, on_demand: true}
`)
	url := base + "cam/index.m3u8"
	if got := strings.Join(ffprobeCodecs(t, url), ","); !strings.Contains(got, "h264") || !strings.Contains(got, "opus") {
		t.Fatalf("ffprobe found codecs %q, want h264 and opus", got)
	}
	frames, errs := ffmpegHLS(t, url, 5)
	t.Logf("ffmpeg decoded %d video frames in 5 s of the camera over LL-HLS", frames)
	if frames < 100 {
		t.Errorf("ffmpeg decoded %d frames of 5 s at 25 fps, want at least 100", frames)
	}
	if len(errs) > 0 {
		t.Errorf("ffmpeg reported errors:\n%s", strings.Join(errs, "\n"))
	}
}

// TestHLSMPEGTS plays the demo route over the MPEG-TS variant and checks that a route without a
// codec HLS carries (a G.711 publisher) is refused with 415 and says why.
func TestHLSMPEGTS(t *testing.T) {
	peertest.Require(t, "ffmpeg", "ffprobe")
	g, base := hlsGateway(t, `rtsp:
  listen: LISTEN
hls:
  listen: HLSLISTEN
  variant: mpegts
  segment_count: 3
routes:
  demo: {source: demo}
  pcm: {source: publisher}
`)
	url := base + "demo/index.m3u8"
	pl := mediaPlaylist(t, base, "demo", "")
	if !strings.Contains(pl, ".ts") || strings.Contains(pl, "#EXT-X-PART:") {
		t.Errorf("MPEG-TS media playlist should list .ts segments and no parts:\n%s", pl)
	}
	frames, errs := ffmpegHLS(t, url, 6)
	t.Logf("ffmpeg decoded %d video frames in 6 s of MPEG-TS HLS", frames)
	if frames < 120 || len(errs) > 0 {
		t.Errorf("MPEG-TS HLS: %d frames (want at least 120), errors:\n%s", frames, strings.Join(errs, "\n"))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	peertest.Run(ctx, t, "ffmpeg", "-nostats", "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
		"-c:a", "pcm_mulaw", "-f", "rtsp", "-rtsp_transport", "tcp", g.URL+"pcm")
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _, body := httpGet(t, base+"pcm/index.m3u8", "")
		if code == http.StatusUnsupportedMediaType {
			if !strings.Contains(body, "no track HLS") || !strings.Contains(body, "G711") {
				t.Errorf("415 for the G.711 route says %q; want it to name the codec", body)
			}
			break
		}
		if code != http.StatusNotFound || time.Now().After(deadline) { // 404 until the publisher is on
			t.Fatalf("G.711 route: %d %q, want 415", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestHLSAuth checks the RTSP read rules on HLS: 401 with a Basic challenge without credentials
// and with a wrong password, 403 without the route's read permission or from outside its
// allow_ips, 200 and a playable stream (ffmpeg with credentials in the URL) for a reader.
func TestHLSAuth(t *testing.T) {
	peertest.Require(t, "ffmpeg")
	_, base := hlsGateway(t, `rtsp:
  listen: LISTEN
hls:
  listen: HLSLISTEN
  variant: fmp4
auth:
  realm: `+authRealm+`
  allow_basic_plain: true
  anonymous: {read: [open]}
  users:
`+authUser(t, "viewer", "view-pw", "argon2id", false, "      read: [demo, fenced]\n")+`routes:
  demo: {source: demo}
  open: {source: demo}
  other: {source: demo}
  fenced: {source: demo, allow_ips: [10.9.9.0/24]}
`)
	code, h, _ := httpGet(t, base+"demo/index.m3u8", "")
	if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), `Basic realm="`+authRealm+`"`) {
		t.Errorf("no credentials: %d, WWW-Authenticate %q; want 401 with a Basic challenge", code, h.Get("WWW-Authenticate"))
	}
	if code, _, _ := httpGet(t, base+"demo/index.m3u8", "viewer:wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code, _, _ := httpGet(t, base+"other/index.m3u8", "viewer:view-pw"); code != http.StatusForbidden {
		t.Errorf("no read permission: %d, want 403", code)
	}
	if code, _, body := httpGet(t, base+"fenced/index.m3u8", "viewer:view-pw"); code != http.StatusForbidden || !strings.Contains(body, "allow_ips") {
		t.Errorf("outside the route's allow_ips: %d %q, want 403 naming allow_ips", code, body)
	}
	if code, _, _ := httpGet(t, base+"open/index.m3u8", ""); code != http.StatusOK {
		t.Errorf("anonymous read of an open route: %d, want 200", code)
	}
	mediaPlaylist(t, base, "demo", "viewer:view-pw")
	frames, errs := ffmpegHLS(t, strings.Replace(base, "http://", "http://viewer:view-pw@", 1)+"demo/index.m3u8", 4)
	if frames < 75 || len(errs) > 0 {
		t.Errorf("ffmpeg with credentials: %d frames (want at least 75), errors:\n%s", frames, strings.Join(errs, "\n"))
	}
}

// hlsJSVersion is the hls.js release the browser test fetches from the npm registry at test time.
const hlsJSVersion = "1.6.15"

// hlsJS fetches hls.js with `npm pack` into dir and returns the path of its minified build.
func hlsJS(t testing.TB, dir string) string {
	t.Helper()
	peertest.Require(t, "npm", "tar")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", "hls.js@"+hlsJSVersion)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(dir, "npm-cache"), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		// the registry is a peer like any other: unreachable means skip, or fail when strict
		if peertest.StrictPeers() {
			t.Fatalf("npm pack hls.js@%s: %v\n%s", hlsJSVersion, err, out)
		}
		t.Skipf("npm pack hls.js@%s (set %s=1 to make this fail): %v\n%s", hlsJSVersion, peertest.RequirePeersEnv, err, out)
	}
	tgz := filepath.Join(dir, "hls.js-"+hlsJSVersion+".tgz")
	if out, err := exec.Command("tar", "-xzf", tgz, "-C", dir, "package/dist/hls.min.js").CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v\n%s", tgz, err, out)
	}
	return filepath.Join(dir, "package", "dist", "hls.min.js")
}

// hlsPage plays SRC with hls.js into a muted <video> and exposes a canvas probe.
const hlsPage = `<!doctype html><html><body>
<video id="v" muted autoplay playsinline width="640" height="360"></video>
<canvas id="c" width="64" height="36"></canvas>
<script src="hls.min.js"></script>
<script>
window.hlsErrors = [];
const v = document.getElementById('v');
const hls = new Hls({lowLatencyMode: true});
hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.hlsErrors.push(d.type + ':' + d.details); });
hls.loadSource(SRC);
hls.attachMedia(v);
hls.on(Hls.Events.MANIFEST_PARSED, () => v.play());
// brightness is the mean luma of the current frame drawn at 64x36
window.brightness = () => {
  const c = document.getElementById('c').getContext('2d');
  c.drawImage(v, 0, 0, 64, 36);
  const d = c.getImageData(0, 0, 64, 36).data;
  let s = 0;
  for (let i = 0; i < d.length; i += 4) s += 0.299*d[i] + 0.587*d[i+1] + 0.114*d[i+2];
  return s / (d.length / 4);
};
</script></body></html>`

// TestHLSChromium plays the demo route's LL-HLS in headless Chromium with hls.js (fetched from
// npm at test time): currentTime advances and a decoded frame drawn on a canvas is not black.
func TestHLSChromium(t *testing.T) {
	b := peertest.NewBrowser(t)
	dir := t.TempDir()
	js := hlsJS(t, dir)
	_, base := hlsGateway(t, `rtsp:
  listen: LISTEN
hls:
  listen: HLSLISTEN
routes:
  demo: {source: demo}
`)
	if ok, err := peertest.Eval[bool](b, `MediaSource.isTypeSupported('video/mp4; codecs="avc1.4d401f"')`); err != nil || !ok {
		t.Fatalf("this Chromium cannot decode H.264 in MSE (isTypeSupported %v, %v)", ok, err)
	}
	page := strings.Replace(hlsPage, "SRC", fmt.Sprintf("%q", base+"demo/index.m3u8"), 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, page)
		case "/hls.min.js":
			http.ServeFile(w, r, js)
		default:
			http.NotFound(w, r)
		}
	}))
	defer site.Close()
	if err := b.Navigate(site.URL + "/"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitJS(`document.getElementById('v').currentTime > 1 || window.hlsErrors.length > 0`, 25*time.Second); err != nil {
		errs, _ := peertest.Eval[[]string](b, `window.hlsErrors`)
		t.Fatalf("video did not start: %v (hls.js errors %v)", err, errs)
	}
	if errs, _ := peertest.Eval[[]string](b, `window.hlsErrors`); len(errs) > 0 {
		t.Fatalf("hls.js fatal errors: %v", errs)
	}
	t1, _ := peertest.Eval[float64](b, `document.getElementById('v').currentTime`)
	time.Sleep(3 * time.Second)
	t2, _ := peertest.Eval[float64](b, `document.getElementById('v').currentTime`)
	if t2-t1 < 1.5 {
		t.Errorf("currentTime went from %.2f to %.2f in 3 s; the video is not playing", t1, t2)
	}
	luma, err := peertest.Eval[float64](b, `window.brightness()`)
	if err != nil {
		t.Fatal(err)
	}
	lat, _ := peertest.Eval[float64](b, `(function(){const v=document.getElementById('v'); return v.buffered.length ? v.buffered.end(v.buffered.length-1) - v.currentTime : -1})()`)
	t.Logf("chromium: currentTime %.2f -> %.2f in 3 s, mean luma of the frame %.1f, buffer ahead %.2f s", t1, t2, luma, lat)
	if luma < 10 {
		b.Screenshot("hls-black-frame")
		t.Errorf("decoded frame is black (mean luma %.1f)", luma)
	}
}
