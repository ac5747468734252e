//go:build linux

package main

import (
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// kaConn is a session to keep alive: its connection and aggregate URL.
type kaConn struct {
	rc  *rtspConn
	url *base.URL
}

// keepalive sends GET_PARAMETER on every session each period, well inside
// the server's session timeout (60 s on meshgw), from one goroutine: a
// thousand sequential round trips on loopback take a fraction of a second.
type keepalive struct {
	quit chan struct{}
	done chan struct{}
	errs atomic.Int64
}

func startKeepalive(conns []kaConn, every time.Duration) *keepalive {
	k := &keepalive{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-k.quit:
				return
			}
			for _, c := range conns {
				select {
				case <-k.quit:
					return
				default:
				}
				if err := c.rc.keepalive(c.url); err != nil {
					k.errs.Add(1)
				}
			}
		}
	}()
	return k
}

// errors is how many keepalives failed so far.
func (k *keepalive) errors() int { return int(k.errs.Load()) }

// stop ends the keepalives and returns how many failed.
func (k *keepalive) stop() int {
	close(k.quit)
	<-k.done
	return k.errors()
}
