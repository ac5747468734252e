package roqserver_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/meshgw/meshgw/internal/gwtest"
	"github.com/meshgw/meshgw/internal/peertest"
	"github.com/meshgw/meshgw/rtp/roq"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a real gateway with the demo route and a quic: listener, plus extra YAML.
func start(t *testing.T, extra string) (addr string, pool *x509.CertPool, g *gwtest.Gateway) {
	t.Helper()
	tc, pool := peertest.SelfSignedTLS(t)
	dir := t.TempDir()
	c := tc.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	_ = os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600)
	_ = os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	g = gwtest.Start(t, fmt.Sprintf("rtsp:\n  listen: LISTEN\nquic:\n  listen: 127.0.0.1:0\n  cert: %s\n  key: %s\n%sroutes:\n  demo:\n    source: demo\n  pub:\n    source: publisher\n", cf, kf, extra))
	return g.RoQ.Addr().String(), pool, g
}

type counter struct {
	c     *roq.Client
	rtp   [2]atomic.Uint64
	rtcp  atomic.Uint64
	other atomic.Uint64
}

func (k *counter) HandlePacket(flow uint64, _ []byte) {
	ref, ok := k.c.Flow(flow)
	switch {
	case !ok:
		k.other.Add(1)
	case ref.RTCP:
		k.rtcp.Add(1)
	default:
		k.rtp[ref.Track].Add(1)
	}
}

func TestPlayAndStats(t *testing.T) {
	addr, pool, g := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := roq.Dial(ctx, "quic://"+addr+"/nope", roq.ClientConfig{TLS: &tls.Config{RootCAs: pool}}); err == nil || !strings.Contains(err.Error(), "refused /nope: 404") {
		t.Errorf("unknown route: %v, want a 404 refusal", err)
	}
	c, err := roq.Dial(ctx, "quic://"+addr+"/demo", roq.ClientConfig{TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Answer.Flows) != 2 || c.Answer.Mode != roq.Datagram || !strings.Contains(string(c.Answer.SDP), "H264") {
		t.Fatalf("answer %+v", c.Answer)
	}
	k := &counter{c: c}
	done := make(chan error, 1)
	rctx, rcancel := context.WithCancel(ctx)
	go func() { done <- c.Run(rctx, k) }()
	// the hubs send sender reports on the RTCP flows; answer one so the server notes it
	for k.rtp[0].Load() < 40 || k.rtp[1].Load() < 40 {
		if ctx.Err() != nil {
			t.Fatalf("packets: video %d audio %d", k.rtp[0].Load(), k.rtp[1].Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := g.RoQ.Stats()
	if len(st) != 1 || st[0].Route != "demo" || st[0].SmoothedRTT <= 0 || st[0].CongestionWindow == 0 || st[0].Tracks[0].Packets == 0 {
		t.Fatalf("stats %+v", st)
	}
	rcancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	c.Close()
	if k.other.Load() != 0 {
		t.Errorf("%d packets on unknown flows", k.other.Load())
	}
	// the session ends with the client
	for deadline := time.Now().Add(10 * time.Second); len(g.RoQ.Stats()) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("session outlived its client")
		}
	}
}

func TestRefusals(t *testing.T) {
	addr, pool, _ := start(t, "auth:\n  allow_ips: [127.0.0.0/8]\n  anonymous:\n    read: [demo]\n  users:\n    u:\n      password_hash: \"$2a$10$abcdefghijklmnopqrstuuGvWcDJ8dsvV9zW2w/6/G3q4kB5UMbXy\"\n      read: [\"*\"]\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct{ path, want string }{
		{"/pub", "403"}, // not anonymously readable
	} {
		_, err := roq.Dial(ctx, "quic://"+addr+tc.path, roq.ClientConfig{TLS: &tls.Config{RootCAs: pool}})
		if err == nil || !strings.Contains(err.Error(), "refused "+tc.path+": "+tc.want) {
			t.Errorf("%s: %v, want a %s refusal", tc.path, err, tc.want)
		}
	}
	c, err := roq.Dial(ctx, "quic://"+addr+"/demo", roq.ClientConfig{TLS: &tls.Config{RootCAs: pool}, Mode: roq.Stream})
	if err != nil {
		t.Fatalf("anonymous demo: %v", err)
	}
	if c.Answer.Mode != roq.Stream {
		t.Errorf("mode %v, want stream", c.Answer.Mode)
	}
	c.Close()
}

func TestBadRequest(t *testing.T) {
	addr, pool, _ := start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	defer udp.Close()
	defer tr.Close() // nothing of the connection outlives the test
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	conn, err := tr.Dial(ctx, raddr, &tls.Config{RootCAs: pool, NextProtos: []string{"roq-10"}}, roq.QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("GET /demo HTTP/1.1\n")); err != nil {
		t.Fatal(err)
	}
	a, err := roq.ReadAnswer(bufio.NewReader(s))
	if err != nil || a.Code != 400 {
		t.Fatalf("answer %+v %v, want 400", a, err)
	}
	// and a connection that never asks is closed after the request timeout by the server's
	// Close at the end of the test (goleak checks nothing is left)
}
