package memifrtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgw/meshgw/memif"
	"github.com/meshgw/meshgw/rtp"
)

// InStats are what an In received.
type InStats struct {
	Packets, Bytes uint64
	// Invalid counts buffers that were not a header and an RTP packet of a known track.
	Invalid uint64
	// Producers is how many producers have connected so far.
	Producers uint64
	// LastPacket is when the last packet arrived (zero before the first).
	LastPacket time.Time
}

// In takes a stream from a memif producer: every buffer one RTP packet of one of the stream's
// tracks behind the packets form's header. The stream's description comes from configuration
// (the producer sends only packets); OnReady is called when a producer connects and
// OnDisconnect when it leaves, so the hubs' lines continue across producer restarts.
type In struct {
	ep     *memif.Endpoint
	sdp    []byte
	tracks []rtp.Track
	h      rtp.SourceHandler
	log    *slog.Logger

	packets, bytes, invalid, producers atomic.Uint64
	last                               atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewIn serves ep's producers into h with the stream's description sdp and its tracks.
func NewIn(ep *memif.Endpoint, sdp []byte, tracks []rtp.Track, h rtp.SourceHandler, log *slog.Logger) *In {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &In{ep: ep, sdp: sdp, tracks: tracks, h: h, log: log, cancel: cancel}
	in.wg.Add(1)
	go in.run(ctx)
	return in
}

// Stats are the In's counters.
func (in *In) Stats() InStats {
	st := InStats{Packets: in.packets.Load(), Bytes: in.bytes.Load(), Invalid: in.invalid.Load(), Producers: in.producers.Load()}
	if l := in.last.Load(); l != 0 {
		st.LastPacket = time.Unix(0, l)
	}
	return st
}

// Close disconnects the producer and stops; the endpoint stays its owner's.
func (in *In) Close() {
	in.cancel()
	in.wg.Wait()
}

// errInClosed is the OnDisconnect reason after Close.
var errInClosed = errors.New("memifrtp: source closed")

func (in *In) run(ctx context.Context) {
	defer in.wg.Done()
	buf := make([]byte, 1<<20)
	for {
		c, err := in.ep.Accept(ctx)
		if err != nil {
			return
		}
		in.producers.Add(1)
		if err := in.h.OnReady(in.sdp, in.tracks); err != nil {
			in.log.Warn("memif producer refused by the stream", "id", c.ID(), "err", err)
			c.Close()
			continue
		}
		err = in.serve(ctx, c, buf)
		c.Close()
		in.h.OnDisconnect(err)
	}
}

// serve reads c's packets into the handler until c ends or ctx is cancelled; the reason is
// returned.
func (in *In) serve(ctx context.Context, c *memif.Conn, buf []byte) error {
	rx := c.Rx(0)
	for k := 0; ; k++ {
		if k%maxBatch == 0 {
			rx.Flush() // hand buffers back in batches, not only when the ring runs dry
		}
		n, err := rx.ReadPacket(buf)
		switch {
		case errors.Is(err, memif.ErrTooBig):
			in.invalid.Add(1)
			continue
		case err != nil:
			return err
		case n == 0:
			rx.Flush()
			if ctx.Err() != nil {
				return errInClosed
			}
			// interrupt mode: the producer kicks the ring's eventfd; a short timeout bounds how
			// long Close waits
			if err := rx.Wait(50 * time.Millisecond); err != nil {
				return fmt.Errorf("memif producer gone: %w", c.Err())
			}
			continue
		}
		h, pkt, err := ParseHeader(buf[:n])
		if err != nil || int(h.Track) >= len(in.tracks) {
			in.invalid.Add(1)
			continue
		}
		in.packets.Add(1)
		in.bytes.Add(uint64(len(pkt)))
		in.last.Store(time.Now().UnixNano())
		in.h.WriteRTP(int(h.Track), pkt)
	}
}
