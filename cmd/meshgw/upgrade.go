package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/meshgw/meshgw/gateway"
	"github.com/meshgw/meshgw/gateway/config"
	"github.com/meshgw/meshgw/gateway/upgrade"
)

// takeTimeout bounds receiving the listeners from a predecessor and its release of the socket.
const takeTimeout = 10 * time.Second

// handing is a service that can hand its listeners to a successor (run with -upgrade-socket).
type handing interface {
	// handedOver is closed once a successor serves on the listeners.
	handedOver() <-chan struct{}
	// drain waits until no connection and no session is served here, the drain deadline
	// passes or ctx ends.
	drain(ctx context.Context, log *slog.Logger)
	// spawn starts a successor: this executable with this process's arguments.
	spawn() error
}

// upgradable is `meshgw run` with -upgrade-socket: the gateway and its side of gateway/upgrade.
type upgradable struct {
	*gateway.Gateway
	offer    *upgrade.Offer
	deadline time.Duration // -upgrade-drain
}

func (u *upgradable) handedOver() <-chan struct{} { return u.offer.HandedOver() }

// busy is the number of RTSP connections and sessions still served here.
func (u *upgradable) busy() int { return u.RTSP.ConnCount() + u.RTSP.SessionCount() }

func (u *upgradable) spawn() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("upgrade: own executable: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("upgrade: start %s: %w", exe, err)
	}
	go func() { _ = cmd.Wait() }() // reaps the successor if it exits before this process does
	return nil
}

func (u *upgradable) Close() error {
	err := u.offer.Close()
	if gerr := u.Gateway.Close(); gerr != nil {
		err = gerr
	}
	return err
}

// openUpgradable opens the all-in-one gateway on the listeners of the meshgw that offers them on
// path (or on fresh ones when none does), tells that predecessor to stop accepting, and offers
// the listeners on path to the next successor.
func openUpgradable(ctx context.Context, cfg *config.Config, path string, deadline time.Duration, log *slog.Logger) (*upgradable, error) {
	var ls gateway.Listeners
	in, err := upgrade.Take(path, takeTimeout)
	switch {
	case errors.Is(err, upgrade.ErrNoPredecessor):
		log.Info("upgrade: no meshgw offers listeners; starting fresh", "socket", path)
	case err != nil:
		return nil, err
	default:
		log.Info("upgrade: took listeners from the running meshgw", "socket", path, "listeners", in.Names())
		ls.RTSP = keepIfSamePort(in.Listener("rtsp"), cfg.RTSP.Listen, log)
		ls.RTSPS = keepIfSamePort(in.Listener("rtsps"), cfg.RTSPS.Listen, log)
	}
	// Open the rest here, not in the gateway: the offer needs them as *net.TCPListener.
	if ls.RTSP == nil && cfg.RTSP.Listen != "" {
		if ls.RTSP, err = net.Listen("tcp", cfg.RTSP.Listen); err != nil {
			abandon(in, ls)
			return nil, fmt.Errorf("rtsp: listen on %q: %w", cfg.RTSP.Listen, err)
		}
	}
	if ls.RTSPS == nil && cfg.RTSPS.Listen != "" {
		if ls.RTSPS, err = net.Listen("tcp", cfg.RTSPS.Listen); err != nil {
			abandon(in, ls)
			return nil, fmt.Errorf("rtsps: listen on %q: %w", cfg.RTSPS.Listen, err)
		}
	}
	var offered []upgrade.Listener
	for _, l := range []struct {
		name string
		ln   net.Listener
	}{{"rtsp", ls.RTSP}, {"rtsps", ls.RTSPS}} {
		if tl, ok := l.ln.(*net.TCPListener); ok {
			offered = append(offered, upgrade.Listener{Name: l.name, L: tl})
		}
	}
	gw, err := gateway.OpenWith(ctx, cfg, log, ls)
	if err != nil && in != nil && cfg.RTSP.RTPPort != 0 {
		// The draining predecessor still sends its readers' RTP from the configured pair, and a
		// UDP socket read by two processes would split its RTCP and UDP publishers' packets
		// between them: this process takes a free pair until it is started fresh.
		log.Warn("upgrade: the configured RTP/RTCP pair is busy (the predecessor drains on it); using a free pair",
			"rtp_port", cfg.RTSP.RTPPort, "err", err)
		free := *cfg
		free.RTSP.RTPPort, free.RTSP.RTCPPort = 0, 0
		gw, err = gateway.OpenWith(ctx, &free, log, ls)
	}
	if err != nil {
		abandon(in, ls) // the predecessor serves on
		return nil, err
	}
	if in != nil {
		if err := in.Ready(takeTimeout); err != nil {
			// Both serve the listeners now; the predecessor may not have stopped.
			log.Warn("upgrade: predecessor did not confirm; it may still accept", "err", err)
		} else {
			log.Info("upgrade: predecessor stopped accepting; this meshgw serves new connections")
		}
	}
	offer, err := upgrade.NewOffer(upgrade.OfferConfig{Path: path, Listeners: offered,
		Stop: gw.RTSP.StopAccepting, Logger: log})
	if err != nil {
		gw.Close()
		return nil, err
	}
	return &upgradable{Gateway: gw, offer: offer, deadline: deadline}, nil
}

// keepIfSamePort keeps an inherited listener when the config still listens on its port; a moved
// rtsp.listen gets a fresh listener.
func keepIfSamePort(ln net.Listener, listen string, log *slog.Logger) net.Listener {
	if ln == nil {
		return nil
	}
	_, port, err := net.SplitHostPort(listen)
	if err == nil && listen != "" {
		if a, ok := ln.Addr().(*net.TCPAddr); ok && strconv.Itoa(a.Port) == port {
			return ln
		}
	}
	log.Info("upgrade: the config moved a listener; not using the inherited one", "inherited", ln.Addr().String(), "listen", listen)
	ln.Close()
	return nil
}

// abandon gives up a handover: the predecessor keeps serving.
func abandon(in *upgrade.Inherited, ls gateway.Listeners) {
	for _, l := range []net.Listener{ls.RTSP, ls.RTSPS} {
		if l != nil {
			l.Close()
		}
	}
	if in != nil {
		in.Close()
	}
}

func (u *upgradable) drain(ctx context.Context, log *slog.Logger) {
	log.Info("upgrade: handed over; draining the connections still here", "busy", u.busy(), "deadline", u.deadline)
	end := time.NewTimer(u.deadline)
	defer end.Stop()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for u.busy() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			log.Warn("upgrade: drain deadline passed; ending the connections still here", "busy", u.busy())
			return
		case <-t.C:
		}
	}
	log.Info("upgrade: drained")
}
