package rtsp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// openListeners opens the plain and the TLS listener the config asks for;
// either may be nil (off), not both.
func openListeners(cfg ServerConfig) (plain, secure net.Listener, err error) {
	plain = cfg.Listener
	if plain == nil && cfg.Listen != "" {
		if plain, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, nil, fmt.Errorf("rtsp: listen on %q: %w", cfg.Listen, err)
		}
	}
	secure = cfg.TLSListener
	if secure == nil && cfg.TLSListen != "" {
		if cfg.TLSConfig == nil {
			closeQuietly(plain)
			return nil, nil, errors.New("rtsp: RTSPS listener without a TLS config")
		}
		if secure, err = net.Listen("tcp", cfg.TLSListen); err != nil {
			closeQuietly(plain)
			return nil, nil, fmt.Errorf("rtsps: listen on %q: %w", cfg.TLSListen, err)
		}
	}
	if secure != nil {
		if cfg.TLSConfig == nil {
			closeQuietly(plain)
			return nil, nil, errors.New("rtsp: RTSPS listener without a TLS config")
		}
		secure = tls.NewListener(secure, cfg.TLSConfig)
	}
	if plain == nil && secure == nil {
		return nil, nil, errors.New("rtsp: neither RTSP nor RTSPS is enabled")
	}
	return plain, secure, nil
}

func closeQuietly(ln net.Listener) {
	if ln != nil {
		_ = ln.Close()
	}
}

// certCheckEvery bounds how often a handshake looks at the files: a stat per
// connection would be cheap, but a flood of handshakes need not cause it.
const certCheckEvery = time.Second

// CertReloader serves a certificate and key from files and picks up new
// versions of them (a renewal by certbot or cert-manager) without a
// restart: each TLS handshake checks, at most once a second, whether either
// file's modification time or size changed, and reloads. A pair that fails to
// load (e.g. the key written before the certificate) is logged and the
// previous certificate stays in use until a later check succeeds.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	certStamp fileStamp
	keyStamp  fileStamp
	checked   time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// NewCertReloader loads the pair once; a pair that cannot be loaded now is an
// error, so a typo fails at start, not at the first client.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	r.checked = time.Now()
	return r, nil
}

// load reads both files; it holds r.mu or runs before r is shared.
func (r *CertReloader) load() error {
	cs, err := stampOf(r.certFile)
	if err != nil {
		return fmt.Errorf("rtsps: certificate: %w", err)
	}
	ks, err := stampOf(r.keyFile)
	if err != nil {
		return fmt.Errorf("rtsps: key: %w", err)
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("rtsps: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert, r.certStamp, r.keyStamp = &c, cs, ks
	return nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= certCheckEvery {
		r.checked = now
		cs, err1 := stampOf(r.certFile)
		ks, err2 := stampOf(r.keyFile)
		if err1 == nil && err2 == nil && (cs != r.certStamp || ks != r.keyStamp) {
			if err := r.load(); err != nil {
				r.log.Warn("rtsps certificate changed but does not load; keeping the previous one", "err", err)
			} else {
				r.log.Info("rtsps certificate reloaded", "cert", r.certFile)
			}
		}
	}
	return r.cert, nil
}

// TLSConfig is a server config that serves r's certificate.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
