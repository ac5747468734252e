package identity

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// racyWindow is how recent a file's mtime must be for its stat to be
// distrusted. Linux stamps files from a coarse clock (a jiffy, up to 10 ms),
// so a rewrite right after a load can leave mtime and size unchanged; like
// git's "racily clean" index entries, such files are compared by content
// until their mtime is safely in the past.
const racyWindow = 2 * time.Second

// fileSource is an identity from static PEM files. Instead of a polling
// goroutine it stats the three files whenever an SVID or bundle is asked for,
// that is on every TLS handshake: three stat calls are cheap next to a
// handshake, and the next connection after a rotation uses the new SVID with
// no delay and no timer to wait for in tests. Files are re-read only when
// their stat changed (or is racy, see racyWindow) and re-parsed only when
// their content changed.
//
// A rotation writes cert and key as two files, so a handshake can catch them
// mismatched; a load that fails keeps the previous SVID and is retried on the
// next handshake, and its error is logged once.
type fileSource struct {
	paths [3]string // cert, key, bundle
	want  spiffeid.ID
	log   *slog.Logger

	mu      sync.Mutex
	td      spiffeid.TrustDomain
	stats   [3]os.FileInfo
	racy    bool
	raw     [3][]byte
	svid    *x509svid.SVID
	bundle  *x509bundle.Bundle
	lastErr string
}

func openFiles(cfg Config, td spiffeid.TrustDomain, want spiffeid.ID, log *slog.Logger) (*fileSource, spiffeid.TrustDomain, error) {
	var missing []string
	for _, f := range []struct{ name, val string }{{"CertFile", cfg.CertFile}, {"KeyFile", cfg.KeyFile}, {"BundleFile", cfg.BundleFile}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	switch len(missing) {
	case 0:
	case 3:
		return nil, td, ErrNoIdentity
	default:
		return nil, td, fmt.Errorf("%w (static files need cert, key and bundle; %s not set)", ErrNoIdentity, strings.Join(missing, ", "))
	}
	f := &fileSource{paths: [3]string{cfg.CertFile, cfg.KeyFile, cfg.BundleFile}, want: want, log: log, td: td}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.refreshLocked(); err != nil {
		return nil, td, err
	}
	log.Info("identity from files", "cert", cfg.CertFile, "id", f.svid.ID.String(),
		"serial", f.svid.Certificates[0].SerialNumber.Text(16), "expires", f.svid.Certificates[0].NotAfter)
	return f, f.td, nil
}

// GetX509SVID implements x509svid.Source.
func (f *fileSource) GetX509SVID() (*x509svid.SVID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refresh()
	return f.svid, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (f *fileSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refresh()
	if td != f.td {
		return nil, fmt.Errorf("identity: no bundle for trust domain %q (%s holds trust domain %q)", td, f.paths[2], f.td)
	}
	return f.bundle, nil
}

// Close implements backend; the file source holds no resources.
func (f *fileSource) Close() error { return nil }

// refresh reloads after a change, keeping the current SVID when the new files
// do not load. Callers hold f.mu.
func (f *fileSource) refresh() {
	err := f.refreshLocked()
	if err == nil {
		f.lastErr = ""
		return
	}
	if msg := err.Error(); msg != f.lastErr {
		f.lastErr = msg
		f.log.Warn("identity files did not reload; still presenting the previous SVID", "id", f.svid.ID.String(), "err", err)
	}
}

// refreshLocked loads the files if they changed since the last successful
// load. Callers hold f.mu.
func (f *fileSource) refreshLocked() error {
	var stats [3]os.FileInfo
	changed := f.racy || f.svid == nil
	for i, p := range f.paths {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		stats[i] = st
		if old := f.stats[i]; old == nil || !os.SameFile(old, st) || !old.ModTime().Equal(st.ModTime()) || old.Size() != st.Size() {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	var raw [3][]byte
	same := f.svid != nil
	for i, p := range f.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		raw[i] = b
		same = same && bytes.Equal(b, f.raw[i])
	}
	if !same {
		if err := f.parse(raw); err != nil {
			return err
		}
		f.raw = raw
	}
	// Record the stats taken before reading: if a file changed in between,
	// the next stat differs and triggers another read.
	f.stats = stats
	now := time.Now()
	f.racy = false
	for _, st := range stats {
		if now.Sub(st.ModTime()) < racyWindow {
			f.racy = true
		}
	}
	return nil
}

// parse validates raw and makes it the current SVID and bundle.
func (f *fileSource) parse(raw [3][]byte) error {
	svid, err := x509svid.Parse(raw[0], raw[1])
	if err != nil {
		return fmt.Errorf("identity: SVID from %s and %s: %w", f.paths[0], f.paths[1], err)
	}
	if !f.want.IsZero() && svid.ID != f.want {
		return fmt.Errorf("identity: %s holds %s, want %s", f.paths[0], svid.ID, f.want)
	}
	td := f.td
	if td.IsZero() {
		td = svid.ID.TrustDomain()
	} else if !svid.ID.MemberOf(td) {
		// Once set (by config or the first load) the trust domain is fixed:
		// a rotation must not move the process into another one.
		return fmt.Errorf("identity: %s holds %s, which is not in trust domain %q", f.paths[0], svid.ID, td)
	}
	bundle, err := x509bundle.Parse(td, raw[2])
	if err != nil {
		return fmt.Errorf("identity: bundle %s: %w", f.paths[2], err)
	}
	if bundle.Empty() {
		return fmt.Errorf("identity: bundle %s holds no CA certificate", f.paths[2])
	}
	// Verifying our own SVID against our own bundle catches a cert from one
	// CA and a bundle from another before a peer has to.
	if _, _, err := x509svid.Verify(svid.Certificates, bundle); err != nil {
		return fmt.Errorf("identity: %s does not verify against bundle %s: %w", f.paths[0], f.paths[2], err)
	}
	if f.svid != nil {
		f.log.Info("identity files reloaded", "id", svid.ID.String(),
			"serial", svid.Certificates[0].SerialNumber.Text(16), "expires", svid.Certificates[0].NotAfter)
	}
	f.td, f.svid, f.bundle = td, svid, bundle
	return nil
}
