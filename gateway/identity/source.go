package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// ErrNoIdentity is returned by Open when neither the Workload API nor static
// files are configured. Callers refuse to start on it: the control plane is
// never served without mutual TLS.
var ErrNoIdentity = errors.New("identity: no SPIFFE identity configured: set " +
	workloadapi.SocketEnv + " to a Workload API address, or configure cert, key and bundle files")

// Config says where the identity comes from. When the environment variable
// SPIFFE_ENDPOINT_SOCKET is set, the Workload API is used and the file fields
// are ignored; otherwise CertFile, KeyFile and BundleFile are all required.
type Config struct {
	// TrustDomain is the trust domain (e.g. "mesh.example") the SVID must
	// belong to and whose bundle verifies peers. Empty means the trust
	// domain of the SVID.
	TrustDomain string
	// ID is the SPIFFE ID to present. It is needed with the Workload API when
	// several SVIDs are issued to the same workload (control and node under
	// one uid, as in the all-in-one mode); empty means the first one
	// offered. With static files it is a check that the files hold this ID.
	ID string
	// CertFile holds the X509-SVID: PEM leaf followed by any intermediates.
	CertFile string
	// KeyFile holds the SVID's private key as PKCS#8 PEM.
	KeyFile string
	// BundleFile holds the trust domain's CA certificates as PEM.
	BundleFile string
}

// backend is one of the two identity providers behind a Source.
type backend interface {
	X509Source
	Close() error
}

// Source is a process's SPIFFE identity: its current X509-SVID and the
// bundle that verifies its peers. It implements x509svid.Source and
// x509bundle.Source, and is safe for concurrent use; a rotated SVID (new
// static files, or a Workload API push) is served without reopening it.
type Source struct {
	td     spiffeid.TrustDomain
	b      backend
	closed atomic.Bool

	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open returns the identity described by cfg: from the Workload API when
// SPIFFE_ENDPOINT_SOCKET is set, from cfg's static files otherwise. With the
// Workload API it blocks until an SVID (the one named by cfg.ID, if set) is
// delivered or ctx ends, so bound ctx; later SVIDs are pushed by the agent.
// Static files are checked with a stat on every handshake and re-read when
// they changed, so rotation needs no restart and no timer. It returns an
// error wrapping ErrNoIdentity when nothing is configured. A nil log discards
// log output.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		td   spiffeid.TrustDomain
		want spiffeid.ID
		err  error
	)
	if cfg.TrustDomain != "" {
		if td, err = spiffeid.TrustDomainFromString(cfg.TrustDomain); err != nil {
			return nil, fmt.Errorf("identity: trust domain %q: %w", cfg.TrustDomain, err)
		}
	}
	if cfg.ID != "" {
		if want, err = spiffeid.FromString(cfg.ID); err != nil {
			return nil, fmt.Errorf("identity: ID %q: %w", cfg.ID, err)
		}
		if !td.IsZero() && !want.MemberOf(td) {
			return nil, fmt.Errorf("identity: ID %q is not in trust domain %q", want, td)
		}
	}

	var b backend
	if addr := os.Getenv(workloadapi.SocketEnv); addr != "" {
		if cfg.CertFile != "" || cfg.KeyFile != "" || cfg.BundleFile != "" {
			log.Info("identity files ignored: "+workloadapi.SocketEnv+" is set", "cert", cfg.CertFile)
		}
		b, td, err = openWorkload(ctx, addr, td, want, log)
	} else {
		b, td, err = openFiles(cfg, td, want, log)
	}
	if err != nil {
		return nil, err
	}
	s := &Source{td: td, b: b, done: make(chan struct{})}
	if w, ok := b.(*workloadSource); ok {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.watch(s.done)
		}()
	}
	return s, nil
}

// GetX509SVID returns the SVID to present now. It implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	if s.closed.Load() {
		return nil, errors.New("identity: source is closed")
	}
	return s.b.GetX509SVID()
}

// GetX509BundleForTrustDomain returns the CA bundle of td. It implements
// x509bundle.Source; a peer from a trust domain without a bundle fails
// verification here.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if s.closed.Load() {
		return nil, errors.New("identity: source is closed")
	}
	return s.b.GetX509BundleForTrustDomain(td)
}

// ID returns the SPIFFE ID of the SVID currently presented, or the zero ID
// when the source is closed or has no usable SVID.
func (s *Source) ID() spiffeid.ID {
	svid, err := s.GetX509SVID()
	if err != nil {
		return spiffeid.ID{}
	}
	return svid.ID
}

// TrustDomain returns the trust domain the source's SVID belongs to, the one
// to build authorizers (AuthorizeControl, AuthorizeAnyNode) for.
func (s *Source) TrustDomain() spiffeid.TrustDomain { return s.td }

// Close stops watching for new SVIDs and releases the Workload API
// connection. Calls after the first return the first call's result.
func (s *Source) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		s.wg.Wait()
		if err := s.b.Close(); err != nil {
			s.closeErr = fmt.Errorf("identity: close: %w", err)
		}
	})
	return s.closeErr
}

// workloadSource is an identity from the SPIFFE Workload API (a SPIRE agent).
type workloadSource struct {
	*workloadapi.X509Source
	addr string
	want spiffeid.ID
	log  *slog.Logger
	// offered is the list of IDs in the latest Workload API update, for
	// messages that say what was offered when the wanted ID is missing.
	offered atomic.Pointer[string]
}

func openWorkload(ctx context.Context, addr string, td spiffeid.TrustDomain, want spiffeid.ID, log *slog.Logger) (*workloadSource, spiffeid.TrustDomain, error) {
	if err := workloadapi.ValidateAddress(addr); err != nil {
		return nil, td, fmt.Errorf("identity: %s=%q: %w", workloadapi.SocketEnv, addr, err)
	}
	w := &workloadSource{addr: addr, want: want, log: log}
	none := "nothing"
	w.offered.Store(&none)
	xs, err := workloadapi.NewX509Source(ctx,
		workloadapi.WithClientOptions(workloadapi.WithAddr(addr), workloadapi.WithLogger(spiffeLogger{log})),
		workloadapi.WithDefaultX509SVIDPicker(w.pick))
	if err != nil {
		return nil, td, fmt.Errorf("identity: workload API at %s: %w", addr, err)
	}
	w.X509Source = xs
	// The first update may predate the registration of the wanted ID; later
	// updates are pushed by the agent, so wait for them rather than poll.
	svid, err := xs.GetX509SVID()
	for err != nil {
		select {
		case <-xs.Updated():
			svid, err = xs.GetX509SVID()
		case <-ctx.Done():
			_ = xs.Close()
			return nil, td, fmt.Errorf("identity: workload API at %s offers %s, not %s: %w", addr, *w.offered.Load(), want, ctx.Err())
		}
	}
	if td.IsZero() {
		td = svid.ID.TrustDomain()
	} else if !svid.ID.MemberOf(td) {
		_ = xs.Close()
		return nil, td, fmt.Errorf("identity: workload API at %s issued %s, which is not in trust domain %q", addr, svid.ID, td)
	}
	log.Info("identity from workload API", "addr", addr, "id", svid.ID.String(),
		"serial", svid.Certificates[0].SerialNumber.Text(16), "expires", svid.Certificates[0].NotAfter)
	return w, td, nil
}

// pick chooses the SVID to present among those the Workload API offers.
// Returning nil makes GetX509SVID fail, which is what a handshake should do
// when the wanted identity is gone.
func (w *workloadSource) pick(svids []*x509svid.SVID) *x509svid.SVID {
	ids := make([]string, len(svids))
	for i, s := range svids {
		ids[i] = s.ID.String()
	}
	offered := "[" + strings.Join(ids, " ") + "]"
	w.offered.Store(&offered)
	for _, s := range svids {
		if w.want.IsZero() || s.ID == w.want {
			return s
		}
	}
	return nil
}

// watch logs every SVID the agent pushes until done is closed, so that
// rotations and a withdrawn registration are visible in the log.
func (w *workloadSource) watch(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-w.Updated():
		}
		svid, err := w.GetX509SVID()
		if err != nil {
			w.log.Warn("workload API no longer offers the wanted SVID", "addr", w.addr,
				"want", w.want.String(), "offered", *w.offered.Load(), "err", err)
			continue
		}
		w.log.Info("workload API update", "id", svid.ID.String(),
			"serial", svid.Certificates[0].SerialNumber.Text(16), "expires", svid.Certificates[0].NotAfter)
	}
}

// spiffeLogger routes go-spiffe's Workload API client messages (reconnects,
// stream errors) into the process log.
type spiffeLogger struct{ log *slog.Logger }

func (l spiffeLogger) Debugf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "workloadapi")
}

func (l spiffeLogger) Infof(format string, args ...any) {
	l.log.Info(fmt.Sprintf(format, args...), "component", "workloadapi")
}

func (l spiffeLogger) Warnf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "component", "workloadapi")
}

func (l spiffeLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), "component", "workloadapi")
}
