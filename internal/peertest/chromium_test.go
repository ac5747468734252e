package peertest

import (
	"context"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"
	"time"
)

// TestBrowserDrivesPage loads a page whose script changes the DOM after a
// delay and fetches JSON from the same server, so navigation, waiting for a
// selector and for a JS condition, evaluation and screenshots are all
// exercised against real Chromium.
func TestBrowserDrivesPage(t *testing.T) {
	RequireChromium(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><title>t</title><div id="a">start</div>
<script>
setTimeout(() => { const d = document.createElement('p'); d.id = 'late'; d.textContent = 'late'; document.body.appendChild(d); }, 300);
fetch('/data').then(r => r.json()).then(j => { document.getElementById('a').textContent = j.word; });
</script>`))
	})
	mux.HandleFunc("/data", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"word":"fetched"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := NewBrowser(t)
	if err := b.Navigate(srv.URL + "/"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitVisible("#late", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitJS(`document.getElementById('a').textContent === 'fetched'`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	n, err := Eval[int](b, `document.querySelectorAll('p').length`)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("page has %d <p>, want 1", n)
	}
	if err := b.WaitJS(`document.getElementById('nothing')`, 300*time.Millisecond); err == nil {
		t.Fatal("WaitJS on an absent element succeeded")
	}
	if _, err := Eval[int](b, `(() => { throw new Error('boom') })()`); err == nil {
		t.Fatal("Eval of a throwing expression succeeded")
	}
	path := b.Screenshot("harness")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if img.Bounds().Dx() < 100 || img.Bounds().Dy() < 100 {
		t.Fatalf("screenshot is %v", img.Bounds())
	}
}

// TestBrowserInNetns runs the browser inside a namespace and loads a page
// served on that namespace's loopback, which the host's loopback does not
// have.
func TestBrowserInNetns(t *testing.T) {
	RequireChromium(t)
	Require(t, SystemPython)
	nn := NewNetns(t, "mgwcr")
	h := nn.Hosts[0]
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/index.html", []byte(`<!doctype html><p id="here">inside</p>`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := h.Run(context.Background(), t, SystemPython, "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, "18473")
	if _, err := srv.WaitForOutput(regexp.MustCompile(`Serving HTTP`), 20*time.Second); err != nil {
		t.Fatalf("http.server in %s: %v", h, err)
	}
	b := NewBrowserOn(t, h)
	if err := b.Navigate("http://127.0.0.1:18473/"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitJS(`document.getElementById('here') && document.getElementById('here').textContent === 'inside'`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
}
