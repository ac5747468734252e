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
	"github.com/meshgw/meshgw/rtp/st2110"
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

	// pk, with NewFrameIn, packetizes the frames form's frames per track (nil: not raw video).
	pk      []*st2110.Packetizer
	pkt     []byte
	bufSize int

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
	in := &In{ep: ep, sdp: sdp, tracks: tracks, h: h, log: log, cancel: cancel, bufSize: 1 << 20}
	in.wg.Add(1)
	go in.run(ctx)
	return in
}

// NewFrameIn is NewIn for a producer that writes the frames form: videos[i] is track i's raw
// video format (nil for a track that takes packets). Each whole frame is cut into RFC 4175
// packets (st2110.Packetizer, line boundaries, its header's RTP timestamp) for the handler, so
// the stream's readers get raw video over RTP. Buffers in the packets form still pass as
// packets.
func NewFrameIn(ep *memif.Endpoint, sdp []byte, tracks []rtp.Track, videos []*st2110.Video, h rtp.SourceHandler, log *slog.Logger) (*In, error) {
	if len(videos) != len(tracks) {
		return nil, fmt.Errorf("memifrtp: %d video formats for %d tracks", len(videos), len(tracks))
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := &In{ep: ep, sdp: sdp, tracks: tracks, h: h, log: log, bufSize: 1 << 20, pk: make([]*st2110.Packetizer, len(tracks)),
		pkt: make([]byte, st2110.DefaultPayload)}
	for i, v := range videos {
		if v == nil {
			continue
		}
		p, err := st2110.NewPacketizer(st2110.PacketizerConfig{Video: v, PayloadType: tracks[i].PayloadType, SSRC: uint32(i + 1)})
		if err != nil {
			return nil, fmt.Errorf("memifrtp: track %d: %w", i, err)
		}
		in.pk[i] = p
		in.bufSize = max(in.bufSize, FrameHeaderLen+v.FrameSize())
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	in.wg.Add(1)
	go in.run(ctx)
	return in, nil
}

// writeFrame packetizes one frames-form buffer chain into the handler; false when it is not a
// whole frame of a raw video track in that track's format.
func (in *In) writeFrame(b []byte) bool {
	m, data, err := ParseFrame(b)
	if err != nil || int(m.Track) >= len(in.pk) || in.pk[m.Track] == nil {
		return false
	}
	p := in.pk[m.Track]
	if p.Begin(data, m.RTPTimestamp) != nil {
		return false
	}
	for n := p.Next(in.pkt); n > 0; n = p.Next(in.pkt) {
		in.packets.Add(1)
		in.bytes.Add(uint64(n))
		in.h.WriteRTP(int(m.Track), in.pkt[:n])
	}
	in.last.Store(time.Now().UnixNano())
	return true
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
	buf := make([]byte, in.bufSize)
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
		if in.pk != nil && n >= FrameHeaderLen && buf[1] == KindFrame {
			if !in.writeFrame(buf[:n]) {
				in.invalid.Add(1)
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
