package roq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/quic-go/quic-go"
)

// PacketHandler takes the packets received on a connection. HandlePacket may be called from
// several goroutines at once (datagrams and each stream have their own); pkt is valid only
// during the call.
type PacketHandler interface {
	HandlePacket(flow uint64, pkt []byte)
}

// Receive reads every DATAGRAM and unidirectional stream of c and hands their packets to h
// until ctx ends or the connection closes; it returns after its stream readers have. A stream
// that breaks the framing is stopped with ROQ_PACKET_ERROR; the connection goes on.
func Receive(ctx context.Context, c *quic.Conn, h PacketHandler) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 1)
	if DatagramsOK(c) {
		wg.Go(func() {
			for {
				b, err := c.ReceiveDatagram(ctx)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					cancel()
					return
				}
				flow, pkt, err := ParseDatagram(b)
				if err != nil {
					continue // one bad datagram costs only itself
				}
				h.HandlePacket(flow, pkt)
			}
		})
	}
	readers := sync.Pool{New: func() any { return NewStreamReader(nil) }}
	for {
		s, err := c.AcceptUniStream(ctx)
		if err != nil {
			cancel()
			select {
			case e := <-errc:
				err = e
			default:
			}
			if ctx.Err() != nil && c.Context().Err() == nil {
				return nil
			}
			return fmt.Errorf("roq: receive: %w", err)
		}
		wg.Go(func() {
			r := readers.Get().(*StreamReader)
			defer readers.Put(r)
			r.Reset(s)
			if err := readStream(r, h); err != nil {
				s.CancelRead(CodePacketError)
			}
		})
	}
}

// readStream hands every packet of one stream to h.
func readStream(r *StreamReader, h PacketHandler) error {
	flow, err := r.Flow()
	if err != nil {
		return err
	}
	for {
		pkt, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		h.HandlePacket(flow, pkt)
	}
}
