package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/meshgw/meshgw/rtp/roq"
	"github.com/meshgw/meshgw/rtsp/sdp"
)

const roqUsage = `Usage:
  meshgw roq pull [flags] quic://HOST:PORT/ROUTE
      pull a route over RTP over QUIC and relay it as RTP/UDP to a local player
  meshgw roq push -sdp FILE [flags] quic://HOST:PORT/ROUTE
      publish a local RTP/UDP stream (described by FILE, e.g. ffmpeg's -sdp_file) into a
      publisher route over RTP over QUIC

Flags of pull and push:
  -rtp ADDR:PORT   pull: where track i's RTP goes: PORT+2i, its RTCP PORT+2i+1 (default 127.0.0.1:5004);
                   push: where track i's RTP is received (PORT+2i) and its RTCP (PORT+2i+1)
  -sdp FILE        pull: write the session description for the player there ("-" for stdout);
                   push: the description of the local stream (required)
  -mode MODE       datagram (default) or stream
  -ca FILE         PEM CA that signed the server's certificate (default: system roots)
  -insecure        do not verify the server's certificate
  -t DURATION      stop after this long (default: until interrupted or the stream ends)
`

func cmdRoQ(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "pull" && args[0] != "push") {
		fmt.Fprint(stderr, roqUsage)
		return 2
	}
	verb := args[0]
	fs := flag.NewFlagSet("roq "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, roqUsage) }
	rtpAddr := fs.String("rtp", "127.0.0.1:5004", "")
	sdpFile := fs.String("sdp", "", "")
	mode := fs.String("mode", "datagram", "")
	caFile := fs.String("ca", "", "")
	insecure := fs.Bool("insecure", false, "")
	dur := fs.Duration("t", 0, "")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "meshgw roq %s: give exactly one quic://HOST:PORT/ROUTE URL\n", verb)
		return 2
	}
	dst, err := netip.ParseAddrPort(*rtpAddr)
	if err != nil || dst.Port() == 0 {
		fmt.Fprintf(stderr, "meshgw roq %s: -rtp %q: want IP:PORT\n", verb, *rtpAddr)
		return 2
	}
	if verb == "push" && *sdpFile == "" {
		fmt.Fprintln(stderr, "meshgw roq push: -sdp FILE (the local stream's description) is required")
		return 2
	}
	cfg := roq.ClientConfig{TLS: &tls.Config{InsecureSkipVerify: *insecure}} //nolint:gosec // only on request
	switch *mode {
	case "datagram":
	case "stream":
		cfg.Mode = roq.Stream
	default:
		fmt.Fprintf(stderr, "meshgw roq pull: -mode %q: want datagram or stream\n", *mode)
		return 2
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "meshgw roq pull: %v\n", err)
			return 1
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "meshgw roq pull: %s holds no PEM certificate\n", *caFile)
			return 1
		}
		cfg.TLS.RootCAs = pool
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	run := roqPull
	if verb == "push" {
		run = roqPush
	}
	if err := run(ctx, fs.Arg(0), dst, *sdpFile, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "meshgw roq %s: %v\n", verb, err)
		return 1
	}
	return 0
}

func roqPush(ctx context.Context, url string, listen netip.AddrPort, sdpFile string, cfg roq.ClientConfig, _, stderr io.Writer) error {
	desc, err := os.ReadFile(sdpFile)
	if err != nil {
		return err
	}
	if _, _, err := sdp.Parse(desc); err != nil {
		return fmt.Errorf("%s: %w", sdpFile, err)
	}
	c, err := roq.DialPush(ctx, url, desc, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	in, err := roq.NewUDPIn(c, listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "meshgw roq push: %s: %d tracks, %s mode (alpn %s), RTP from %s\n", url, len(c.Answer.Flows),
		c.Answer.Mode, c.Conn().ConnectionState().TLS.NegotiatedProtocol, listen)
	start := time.Now()
	err = in.Run(ctx)
	fmt.Fprintf(stderr, "meshgw roq push: published %d RTP packets in %s\n", in.Packets(), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func roqPull(ctx context.Context, url string, dst netip.AddrPort, sdpFile string, cfg roq.ClientConfig, stdout, stderr io.Writer) error {
	c, err := roq.Dial(ctx, url, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	desc, err := sdp.ForUDP(c.Answer.SDP, dst.Addr(), int(dst.Port()))
	if err != nil {
		return fmt.Errorf("session description: %w", err)
	}
	switch sdpFile {
	case "":
	case "-":
		_, _ = stdout.Write(desc)
	default:
		if err := os.WriteFile(sdpFile, desc, 0o644); err != nil {
			return err
		}
	}
	out, err := roq.NewUDPOut(c, dst)
	if err != nil {
		return err
	}
	defer out.Close()
	fmt.Fprintf(stderr, "meshgw roq pull: %s: %d tracks, %s mode (alpn %s), RTP to %s\n", url, len(c.Answer.Flows),
		c.Answer.Mode, c.Conn().ConnectionState().TLS.NegotiatedProtocol, dst)
	start := time.Now()
	err = out.Run(ctx)
	n, b := out.Packets()
	st := c.Conn().ConnectionStats()
	fmt.Fprintf(stderr, "meshgw roq pull: relayed %d RTP packets (%d bytes) in %s; rtt %s, quic packets lost %d\n",
		n, b, time.Since(start).Round(time.Millisecond), st.SmoothedRTT.Round(time.Microsecond), st.PacketsLost)
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return nil
	}
	return err
}
