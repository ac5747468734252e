//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshgw/meshgw/internal/gwtest"
	"github.com/meshgw/meshgw/internal/peertest"
)

// startGateway runs a gateway in the test process with a publisher route
// "load" and the demo route, and returns its RTSP base URL.
func startGateway(t *testing.T) string {
	t.Helper()
	return gwtest.Start(t, "rtsp:\n  listen: LISTEN\nroutes:\n  load:\n    source: publisher\n  \"~^multi[0-9]$\":\n    source: publisher\n  demo:\n    source: demo\n").URL
}

func runForTest(t *testing.T, cfg Config) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := run(ctx, cfg, gwtest.Writer{T: t})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	var b bytes.Buffer
	if err := rep.writeTable(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", b.String())
	return rep
}

func TestEndToEnd(t *testing.T) {
	base := startGateway(t)

	t.Run("udp readers of a published stream, then the floor", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = base + "load"
		cfg.Readers = 5
		cfg.Publish = true
		// 1 Mbit/s: the gateway's 512-packet reader queue then covers seconds of the stream, so a
		// test machine that stalls the process for a while does not turn into reported loss
		cfg.Stream.Bitrate = 1_000_000
		cfg.Warmup = 500 * time.Millisecond
		cfg.Duration = 2 * time.Second
		cfg.PID = os.Getpid() // the gateway runs in this process
		rep := runForTest(t, cfg)
		if rep.ReadersOK != 5 || rep.ReadersFailed != 0 {
			t.Fatalf("readers ok %d failed %d (%s)", rep.ReadersOK, rep.ReadersFailed, rep.FirstError)
		}
		if rep.Delivered.Packets == 0 || rep.Delivered.SourcePktPerSec == 0 {
			t.Fatalf("delivered %+v", rep.Delivered)
		}
		if rep.Loss.Lost != 0 || rep.Loss.Expected == 0 {
			t.Errorf("loss %+v", rep.Loss)
		}
		if rep.Latency == nil || rep.Latency.P50us <= 0 {
			t.Errorf("latency %+v", rep.Latency)
		}
		if rep.Gateway == nil || rep.Gateway.USPerPkt <= 0 || rep.Gateway.RSSBytes == 0 {
			t.Errorf("gateway %+v", rep.Gateway)
		}
		if rep.RcvBuf < cfg.RcvBuf {
			t.Errorf("effective rcvbuf %d below the %d asked", rep.RcvBuf, cfg.RcvBuf)
		}
		f := rep.Floor
		if f == nil {
			t.Fatalf("no floor: %v", rep.Notes)
		}
		if f.Delivered == 0 || f.Lost != 0 || f.Expected != f.Delivered || f.USPerPkt <= 0 {
			t.Errorf("floor %+v", f)
		}
		if rep.Ratio <= 0 {
			t.Errorf("ratio %v", rep.Ratio)
		}
		if p := rep.Publish; p == nil || p.Packets == 0 || p.SendFailures != 0 {
			t.Errorf("publish %+v", p)
		}
	})

	t.Run("tcp readers of the demo", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = base + "demo"
		cfg.Readers = 3
		cfg.Transport = "tcp"
		cfg.Warmup = 500 * time.Millisecond
		cfg.Duration = 1500 * time.Millisecond
		rep := runForTest(t, cfg)
		if rep.ReadersOK != 3 || rep.Delivered.Packets == 0 || rep.Disconnected != 0 {
			t.Fatalf("readers ok %d delivered %d disconnected %d (%s)", rep.ReadersOK, rep.Delivered.Packets, rep.Disconnected, rep.FirstError)
		}
		if rep.Floor != nil || rep.Gateway != nil {
			t.Errorf("floor %+v gateway %+v: neither applies", rep.Floor, rep.Gateway)
		}
	})

	t.Run("three published routes, readers spread over them", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = base + "multi"
		cfg.Routes = 3
		cfg.Readers = 4
		cfg.Publish = true
		cfg.Stream.Bitrate = 500_000
		cfg.Warmup = 500 * time.Millisecond
		cfg.Duration = 1500 * time.Millisecond
		cfg.Floor = false
		rep := runForTest(t, cfg)
		rr := rep.Routes
		if rep.ReadersOK != 4 || rr == nil || rr.Routes != 3 || rr.MinReaders != 1 || rr.MaxReaders != 2 {
			t.Fatalf("readers ok %d (%s), routes %+v", rep.ReadersOK, rep.FirstError, rr)
		}
		if rr.Delivered != rep.Delivered.Packets || rr.RoutesWithLoss != 0 || rep.Publish == nil || rep.Publish.Publishers != 3 {
			t.Errorf("routes %+v publish %+v", rr, rep.Publish)
		}
		for _, r := range rr.PerRoute {
			if len(r.Tracks) != 1 || r.Tracks[0].MaxSSRCs != 1 || r.Tracks[0].Expected == 0 {
				t.Errorf("route %+v", r)
			}
		}
	})

	t.Run("three routes pulled from an origin, then none read", func(t *testing.T) {
		origin := gwtest.Start(t, "rtsp:\n  listen: LISTEN\nroutes:\n  clip:\n    source: publisher\n").URL
		var y strings.Builder
		y.WriteString("rtsp:\n  listen: LISTEN\nroutes:\n")
		for i := range 3 {
			fmt.Fprintf(&y, "  pull%d:\n    source: %sclip\n    reconnect_min: 100ms\n    reconnect_max: 500ms\n", i, origin)
		}
		gw := gwtest.Start(t, y.String()).URL
		cfg := defaultConfig()
		cfg.URL = gw + "pull"
		cfg.Routes = 3
		cfg.Readers = 3
		cfg.PublishURL = origin + "clip"
		cfg.WaitRoutes = 10 * time.Second
		cfg.Stream.Bitrate = 500_000
		cfg.Warmup = 500 * time.Millisecond
		cfg.Duration = 1500 * time.Millisecond
		cfg.Floor = false
		rep := runForTest(t, cfg)
		rr := rep.Routes
		if rep.ReadersOK != 3 || rr == nil || rr.Routes != 3 || rr.MinReaders != 1 || rep.RoutesReadySeconds <= 0 {
			t.Fatalf("readers ok %d (%s), routes %+v, ready after %vs", rep.ReadersOK, rep.FirstError, rr, rep.RoutesReadySeconds)
		}
		if rep.Delivered.Packets == 0 || rep.Latency == nil || rep.Publish == nil || rep.Publish.Publishers != 1 || rep.Publish.URL != cfg.PublishURL {
			t.Errorf("delivered %d latency %+v publish %+v", rep.Delivered.Packets, rep.Latency, rep.Publish)
		}
		cfg.Readers = 0
		cfg.Duration = 500 * time.Millisecond
		rep = runForTest(t, cfg)
		if rep.ReadersOK != 0 || rep.Delivered.Packets != 0 || rep.Floor != nil || rep.RoutesReadySeconds <= 0 {
			t.Errorf("no readers: %+v", rep)
		}
	})

	t.Run("a reader that cannot set up is reported, not fatal", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = base + "nosuchroute"
		cfg.Readers = 2
		cfg.Duration = 100 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rep, err := run(ctx, cfg, nil)
		if err == nil || rep == nil || rep.ReadersFailed != 2 || !strings.Contains(rep.FirstError, "404") {
			t.Fatalf("err %v report %+v", err, rep)
		}
	})
}

// selfSigned writes a fresh self-signed ECDSA certificate for 127.0.0.1 and
// its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestEndToEndSRTP loads a route with SRTP over RTSPS: the readers take the
// keyed description, SETUP RTP/AVP as FFmpeg does, and receive SRTP, whose
// clear RTP headers still give delivery and loss but whose payloads give no
// latency.
func TestEndToEndSRTP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	saddr := fmt.Sprintf("127.0.0.1:%d", peertest.FreePort(t))
	gwtest.Start(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nrtsps:\n  listen: %s\n  cert: %s\n  key: %s\n"+
		"routes:\n  load:\n    source: publisher\n    srtp: optional\n  demo:\n    source: demo\n", saddr, certFile, keyFile))
	surl := "rtsps://" + saddr + "/"

	t.Run("udp readers receive SRTP, the publisher publishes plain RTP over rtsps", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = surl + "load"
		cfg.TLSCA = certFile
		cfg.SRTP = true
		cfg.Readers = 4
		cfg.Publish = true
		cfg.Stream.Bitrate = 1_000_000 // as in TestEndToEnd: no loss from a stalled test machine
		cfg.Warmup = 500 * time.Millisecond
		cfg.Duration = 2 * time.Second
		cfg.PID = os.Getpid()
		rep := runForTest(t, cfg)
		if rep.ReadersOK != 4 || rep.ReadersFailed != 0 || rep.SRTPReaders != 4 {
			t.Fatalf("readers ok %d failed %d srtp %d (%s)", rep.ReadersOK, rep.ReadersFailed, rep.SRTPReaders, rep.FirstError)
		}
		if rep.Delivered.Packets == 0 || rep.Loss.Expected == 0 || rep.Loss.Lost != 0 {
			t.Fatalf("delivered %+v loss %+v", rep.Delivered, rep.Loss)
		}
		if rep.ClearSRTPPayloads != 0 {
			t.Errorf("%d clear payloads to SRTP readers", rep.ClearSRTPPayloads)
		}
		if rep.Latency != nil || !strings.Contains(rep.LatencyUnavailable, "encrypted") {
			t.Errorf("latency %+v, unavailable %q: want none, explained", rep.Latency, rep.LatencyUnavailable)
		}
		if rep.Gateway == nil || rep.Gateway.USPerPkt <= 0 {
			t.Errorf("gateway %+v", rep.Gateway)
		}
		// the floor's own packets are plain: it still measures, with latency
		if f := rep.Floor; f == nil || f.Delivered == 0 || f.Latency == nil {
			t.Errorf("floor %+v (notes %v)", f, rep.Notes)
		}
	})

	t.Run("-srtp refuses a route that serves plain RTP", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = surl + "demo"
		cfg.TLSInsecure = true
		cfg.SRTP = true
		cfg.Readers = 2
		cfg.Duration = 100 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rep, err := run(ctx, cfg, nil)
		if err == nil || rep == nil || rep.ReadersFailed != 2 || !strings.Contains(rep.FirstError, "no SRTP key") {
			t.Fatalf("err %v report %+v", err, rep)
		}
	})

	t.Run("an unknown certificate is refused", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.URL = surl + "demo"
		cfg.Readers = 1
		cfg.Duration = 100 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rep, err := run(ctx, cfg, nil)
		if err == nil || rep == nil || rep.ReadersFailed != 1 || !strings.Contains(rep.FirstError, "certificate") {
			t.Fatalf("err %v report %+v", err, rep)
		}
	})
}
