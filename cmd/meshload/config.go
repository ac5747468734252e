//go:build linux

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// Config is one load run, as the flags describe it.
type Config struct {
	URL              string        // route to read (and, with Publish, to publish)
	Readers          int           // RTSP reader sessions
	Transport        string        // readers' transport: "udp" or "tcp"
	Tracks           string        // "first" or "all" tracks per reader
	RcvBuf           int           // UDP receive buffer to ask for; 0 keeps the kernel default
	Duration         time.Duration // measuring window (and floor run)
	Warmup           time.Duration // after all readers play, before the window
	PID              int           // gateway process whose CPU is measured; 0: none
	Publish          bool          // publish synthetic streams first
	PublishTransport string        // publishers' transport: "udp" or "tcp"
	Publishers       int           // independent published streams (the older spelling of Routes with Publish)
	Routes           int           // routes read (each published with Publish); more than 1 suffixes the URL path 0..N-1
	// PublishURL, if set, is where the one synthetic stream is published (an
	// origin the routes pull from) instead of to the routes themselves.
	PublishURL string
	// WaitRoutes is how long to wait, before the readers set up, for every
	// route to answer DESCRIBE (a pulled route does once its pull is up); 0: no wait.
	WaitRoutes    time.Duration
	Stream        streamParams  // shape of each published stream
	Floor         bool          // run the raw sendmmsg floor after the window
	RxWorkers     int           // UDP receive threads
	RxCoalesce    time.Duration // least time between two wakeups of a receive thread
	SetupParallel int           // readers set up at once
	Keepalive     time.Duration // GET_PARAMETER period
	Timeout       time.Duration // per RTSP request
	TLSCA         string        // PEM file the rtsps:// server's certificate is checked against; "": system roots
	TLSInsecure   bool          // accept any rtsps:// server certificate
	// SRTP makes a reader fail unless the description keys its tracks (a=crypto or
	// a=key-mgmt), so that a run meant to measure SRTP cannot measure plain RTP.
	SRTP bool
}

// defaultConfig is what the flags default to.
func defaultConfig() Config {
	return Config{
		Readers:          10,
		Transport:        "udp",
		Tracks:           "first",
		RcvBuf:           4 << 20,
		Duration:         20 * time.Second,
		Warmup:           3 * time.Second,
		PublishTransport: "udp",
		Publishers:       1,
		Routes:           1,
		Stream:           streamParams{Bitrate: 4_000_000, FPS: 25, GOP: 25, KeyRatio: 8, MaxPacket: 1400},
		Floor:            true,
		RxWorkers:        1,
		RxCoalesce:       500 * time.Microsecond,
		SetupParallel:    32,
		Keepalive:        15 * time.Second,
		Timeout:          10 * time.Second,
	}
}

func (c *Config) validate() error {
	if c.URL == "" {
		return errors.New("-url is required")
	}
	if _, err := base.ParseURL(c.URL); err != nil {
		return fmt.Errorf("-url %q: %w", c.URL, err)
	}
	switch {
	case c.Readers < 0:
		return errors.New("-readers must not be negative")
	case c.Transport != "udp" && c.Transport != "tcp":
		return fmt.Errorf("-transport %q: want udp or tcp", c.Transport)
	case c.PublishTransport != "udp" && c.PublishTransport != "tcp":
		return fmt.Errorf("-publish-transport %q: want udp or tcp", c.PublishTransport)
	case c.Tracks != "first" && c.Tracks != "all":
		return fmt.Errorf("-tracks %q: want first or all", c.Tracks)
	case c.RcvBuf < 0:
		return errors.New("-rcvbuf must not be negative")
	case c.Duration <= 0:
		return errors.New("-duration must be positive")
	case c.Warmup < 0:
		return errors.New("-warmup must not be negative")
	case c.PID < 0:
		return errors.New("-pid must not be negative")
	case c.Publishers < 1:
		return errors.New("-publishers must be at least 1")
	case c.Routes < 1:
		return errors.New("-routes must be at least 1")
	case c.Publishers > 1 && c.Routes > 1 && c.Publishers != c.Routes:
		return fmt.Errorf("-publishers %d and -routes %d disagree (-publishers is the older name of -routes with -publish)", c.Publishers, c.Routes)
	case c.WaitRoutes < 0:
		return errors.New("-wait-routes must not be negative")
	case c.RxCoalesce < 0 || c.RxCoalesce > time.Second:
		return errors.New("-rx-coalesce must be in 0..1s")
	case c.RxWorkers < 1:
		return errors.New("-rx-workers must be at least 1")
	case c.SetupParallel < 1:
		return errors.New("-setup-parallel must be at least 1")
	case c.Keepalive <= 0 || c.Timeout <= 0:
		return errors.New("-keepalive and -timeout must be positive")
	case c.TLSInsecure && c.TLSCA != "":
		return errors.New("-tls-insecure and -tls-ca exclude each other")
	}
	if c.PublishURL != "" {
		if _, err := base.ParseURL(c.PublishURL); err != nil {
			return fmt.Errorf("-publish-url %q: %w", c.PublishURL, err)
		}
		if c.Publishers > 1 {
			return errors.New("-publish-url publishes one stream: -publishers does not apply")
		}
	}
	if c.Publish || c.PublishURL != "" {
		if err := c.Stream.validate(); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nil
}

// routeCount is how many routes the run reads: -routes, or with -publish
// the older -publishers.
func (c *Config) routeCount() int {
	if c.Publish && c.PublishURL == "" && c.Publishers > 1 {
		return c.Publishers
	}
	return c.Routes
}

// streamURLs are the URLs of the routes readers read: the -url itself, or
// with several routes the URL's path with suffix 0..N-1.
func (c *Config) streamURLs() ([]*base.URL, error) {
	u, err := base.ParseURL(c.URL)
	if err != nil {
		return nil, fmt.Errorf("-url: %w", err)
	}
	n := c.routeCount()
	if n == 1 {
		return []*base.URL{u}, nil
	}
	out := make([]*base.URL, n)
	for i := range out {
		v := u.Clone()
		v.Path = strings.TrimSuffix(v.Path, "/") + strconv.Itoa(i)
		v.RawPath = ""
		out[i] = v
	}
	return out, nil
}

// publishURLs are where synthetic streams are published: nowhere without
// -publish or -publish-url, the one -publish-url (an origin), or else every route.
func (c *Config) publishURLs(routes []*base.URL) ([]*base.URL, error) {
	switch {
	case c.PublishURL != "":
		u, err := base.ParseURL(c.PublishURL)
		if err != nil {
			return nil, fmt.Errorf("-publish-url: %w", err)
		}
		return []*base.URL{u}, nil
	case c.Publish:
		return routes, nil
	}
	return nil, nil
}

// routeOf is the route reader i reads: readers are dealt to the routes in
// turn, so route counts differ by at most one and the first readers (the
// floor's schedule candidates) sit on different routes.
func routeOf(reader, routes int) int { return reader % routes }

// tlsConfig is the TLS client configuration of rtsps:// connections: nil
// (system roots) unless -tls-ca or -tls-insecure is given.
func (c *Config) tlsConfig() (*tls.Config, error) {
	switch {
	case c.TLSInsecure:
		// #nosec G402 -- asked for on the command line, for self-signed test gateways
		return &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}, nil
	case c.TLSCA != "":
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca %s: no PEM certificate in it", c.TLSCA)
		}
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
	}
	return nil, nil
}
