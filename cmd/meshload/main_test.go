//go:build linux

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFlags(t *testing.T) {
	var out, errs bytes.Buffer
	for _, args := range [][]string{
		{},                    // -url missing
		{"-url", "http://x/"}, // not rtsp
		{"-url", "rtsp://h/p", "-transport", "quic"},
		{"-url", "rtsp://h/p", "-publish", "-fps", "0"},
		{"-url", "rtsp://h/p", "extra"},
		{"-url", "rtsps://h/p", "-tls-insecure", "-tls-ca", "ca.pem"},
		{"-url", "rtsp://h/p", "-routes", "0"},
		{"-url", "rtsp://h/p", "-publish", "-publishers", "2", "-routes", "3"},
		{"-url", "rtsp://h/p", "-publish-url", "http://x/"},
		{"-url", "rtsp://h/p", "-publish-url", "rtsp://o/clip", "-publishers", "2"},
		{"-url", "rtsp://h/p", "-wait-routes", "-1s"},
	} {
		errs.Reset()
		if code := realMain(args, &out, &errs); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errs.String())
		}
	}
	cfg, asJSON, err := parseFlags([]string{"-url", "rtsp://h/p", "-readers", "1000", "-rcvbuf", "0", "-json", "-publish", "-publishers", "2"}, &errs)
	if err != nil || !asJSON || cfg.Readers != 1000 || cfg.RcvBuf != 0 || !cfg.Publish || cfg.Publishers != 2 || !cfg.Floor {
		t.Fatalf("cfg %+v json %v err %v", cfg, asJSON, err)
	}
	cfg, _, err = parseFlags([]string{"-url", "rtsp://h/pull", "-routes", "100", "-publish-url", "rtsp://o/clip", "-wait-routes", "30s", "-readers", "0"}, &errs)
	if err != nil || cfg.Routes != 100 || cfg.routeCount() != 100 || cfg.PublishURL != "rtsp://o/clip" || cfg.WaitRoutes != 30*time.Second || cfg.Readers != 0 {
		t.Fatalf("routes: cfg %+v err %v", cfg, err)
	}
	cfg, _, err = parseFlags([]string{"-url", "rtsp://h/load", "-publish", "-publishers", "4"}, &errs)
	if err != nil || cfg.routeCount() != 4 {
		t.Fatalf("-publishers as routes: cfg %+v err %v", cfg, err)
	}
	cfg, _, err = parseFlags([]string{"-url", "rtsps://h/p", "-tls-ca", "/nonexistent/ca.pem", "-srtp"}, &errs)
	if err != nil || cfg.TLSCA != "/nonexistent/ca.pem" || !cfg.SRTP {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
	if _, err := cfg.tlsConfig(); err == nil || !strings.Contains(err.Error(), "-tls-ca") {
		t.Errorf("missing CA file: %v", err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.TLSCA = notPEM
	if _, err := cfg.tlsConfig(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("CA file without PEM: %v", err)
	}
	cfg.TLSCA, cfg.TLSInsecure = "", true
	if tc, err := cfg.tlsConfig(); err != nil || !tc.InsecureSkipVerify {
		t.Errorf("-tls-insecure: %+v %v", tc, err)
	}
	errs.Reset()
	if code := realMain([]string{"-h"}, &out, &errs); code != 0 || !strings.Contains(errs.String(), "-rx-workers") {
		t.Fatalf("-h: exit %d, usage %q", code, errs.String())
	}
}
