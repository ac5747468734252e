// Command meshgw runs the media mesh gateway. With no arguments it runs the all-in-one gateway
// (control plus local node) on its embedded default config, which serves a demo stream.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/meshgw/meshgw/gateway"
	"github.com/meshgw/meshgw/gateway/config"
)

const usage = `meshgw - media mesh gateway (RTSP control proxy and RTP forwarders)

Usage:
  meshgw [run] [-c FILE]     run control and local node (default: embedded config with a demo route)
  meshgw check -c FILE       validate a config file; prints FILE:LINE: message for every error
  meshgw certs -dir DIR -td TRUST_DOMAIN NODE...   mint a test CA and SPIFFE SVIDs (control + nodes)
  meshgw version             print the version
  meshgw help                print this help

Flags of run and check:
  -c FILE   config file (YAML); run without -c uses the embedded default config
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "certs":
		return cmdCerts(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "meshgw: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func versionString() string {
	v := "devel"
	goVer := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		goVer = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("meshgw %s (%s)", v, goVer)
}

func flags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	file := fs.String("c", "", "config file")
	return fs, file
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs, file := flags("check", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *file == "" {
		fmt.Fprintln(stderr, "meshgw check: -c FILE is required")
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes)\n", *file, len(cfg.Routes))
	return 0
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs, file := flags("run", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var (
		cfg *config.Config
		err error
	)
	if *file == "" {
		cfg = config.Default()
	} else if cfg, err = config.Load(*file); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.LogFormat == config.LogJSON {
		h = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gw, err := gateway.Open(ctx, cfg, log)
	if err != nil {
		log.Error("meshgw failed to start", "err", err)
		return 1
	}
	<-ctx.Done()
	log.Info("meshgw stopping")
	if err := gw.Close(); err != nil {
		log.Error("meshgw stopped with an error", "err", err)
		return 1
	}
	return 0
}
