//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"golang.org/x/sys/unix"
)

// publisher sends one synthetic stream into a publisher route.
type publisher struct {
	url   *base.URL
	rc    *rtspConn
	tcp   bool
	clock clock
	fps   int
	syn   *synth

	// UDP: a socket connected to the gateway's RTP port, and prebuilt
	// sendmmsg headers pointing into syn's buffer.
	rtpFd, rtcpFd int
	hs            []mmsghdr
	iovs          []unix.Iovec

	stop chan struct{}
	done chan struct{}

	// written by the send loop, read after done
	frames, packets, failed uint64
	err                     error
}

// openPublisher ANNOUNCEs the synthetic stream to u, sets its track up over
// UDP or interleaved TCP, and RECORDs. run then sends it. Over rtsps:// only
// the control connection is TLS: the RTP stays plain (RTP/AVP without keys),
// which a route with srtp: optional accepts and srtp: required refuses.
func openPublisher(ctx context.Context, cfg *Config, tc *tls.Config, u *base.URL, c clock) (p *publisher, err error) {
	tcp := cfg.PublishTransport == "tcp"
	rc, err := dialRTSP(ctx, u, tc, cfg.Timeout, rtspSmallBuf)
	if err != nil {
		return nil, err
	}
	prefix := 0
	if tcp {
		prefix = 4
	}
	p = &publisher{url: u, rc: rc, tcp: tcp, clock: c, fps: cfg.Stream.FPS, rtpFd: -1, rtcpFd: -1,
		syn:  newSynth(cfg.Stream, rand.Uint32(), prefix),
		stop: make(chan struct{}), done: make(chan struct{})}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if _, err := rc.request(base.Announce, u, base.Header{"Content-Type": base.HeaderValue{"application/sdp"}}, synthSDP()); err != nil {
		return p, err
	}
	setupURL, err := base.ParseURL(resolveControl(u.String(), "trackID=0"))
	if err != nil {
		return p, fmt.Errorf("publish SETUP URL: %w", err)
	}
	if tcp {
		if _, err := rc.request(base.Setup, setupURL, base.Header{"Transport": base.HeaderValue{"RTP/AVP/TCP;unicast;interleaved=0-1;mode=record"}}, nil); err != nil {
			return p, err
		}
		// the gateway may answer keepalives while we stream: read them off the connection
		if err := rc.startDemux(func(uint8, []byte) {}); err != nil {
			return p, err
		}
	} else if err := p.setupUDP(setupURL); err != nil {
		return p, err
	}
	if _, err := rc.request(base.Record, u, nil, nil); err != nil {
		return p, err
	}
	return p, nil
}

func (p *publisher) setupUDP(setupURL *base.URL) error {
	ip := p.rc.localAddr().IP
	var port int
	var err error
	p.rtpFd, p.rtcpFd, port, err = udpPair(ip, false)
	if err != nil {
		return err
	}
	tr := fmt.Sprintf("RTP/AVP;unicast;client_port=%d-%d;mode=record", port, port+1)
	res, err := p.rc.request(base.Setup, setupURL, base.Header{"Transport": base.HeaderValue{tr}}, nil)
	if err != nil {
		return err
	}
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err != nil {
		return fmt.Errorf("publish SETUP answer: %w", err)
	}
	if th.ServerPorts == nil {
		return fmt.Errorf("publish SETUP answer has no server_port: %v", res.Header["Transport"])
	}
	srv := p.rc.nc.RemoteAddr().(*net.TCPAddr).IP
	// connected: the kernel need not look the route up per packet, and sendmmsg needs no names
	if err := unix.Connect(p.rtpFd, sockaddrOf(srv, th.ServerPorts[0])); err != nil {
		return fmt.Errorf("connect to the gateway's RTP port: %w", err)
	}
	n := p.syn.p.maxFramePackets()
	p.hs = make([]mmsghdr, n)
	p.iovs = make([]unix.Iovec, n)
	for i := range p.hs {
		p.hs[i].hdr.Iov = &p.iovs[i]
		p.hs[i].hdr.SetIovlen(1)
	}
	return nil
}

// run sends a frame every 1/fps, all of its packets back to back, until
// halt. Frame times are absolute, so a late frame does not delay the rest.
func (p *publisher) run() {
	defer close(p.done)
	start := p.clock.now()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for frame := int64(0); ; frame++ {
		due := start + frame*int64(time.Second)/int64(p.fps)
		if wait := due - p.clock.now(); wait > 0 {
			t.Reset(time.Duration(wait))
			select {
			case <-t.C:
			case <-p.stop:
				return
			}
		} else {
			select {
			case <-p.stop:
				return
			default:
			}
		}
		buf, offs, sizes := p.syn.next(p.clock.now())
		if err := p.send(buf, offs, sizes); err != nil {
			p.err = err
			return
		}
		p.frames++
		p.packets += uint64(len(sizes))
	}
}

func (p *publisher) send(buf []byte, offs, sizes []int) error {
	if p.tcp {
		for i, off := range offs {
			h := buf[off-4 : off]
			h[0], h[1] = base.InterleavedFrameMagicByte, 0
			binary.BigEndian.PutUint16(h[2:], uint16(sizes[i]))
		}
		return p.rc.write(buf)
	}
	for i, off := range offs {
		p.iovs[i].Base = &buf[off]
		p.iovs[i].SetLen(sizes[i])
	}
	p.failed += uint64(sendmmsg(p.rtpFd, p.hs[:len(offs)]))
	return nil
}

// halt stops the send loop and waits for it.
func (p *publisher) halt() {
	close(p.stop)
	<-p.done
}

// close TEARDOWNs (if the session got that far) and closes everything.
func (p *publisher) close() {
	if p.rc.session != "" {
		_, _ = p.rc.request(base.Teardown, p.url, nil, nil)
	}
	p.rc.close()
	for _, fd := range []int{p.rtpFd, p.rtcpFd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
