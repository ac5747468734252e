package rtsp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
)

// errTooLarge marks a request over the configured size; it is answered and the connection closed.
var errTooLarge = errors.New("request too large")

// errTooManyHeaders marks a request with more header lines than allowed; it is answered 400.
var errTooManyHeaders = errors.New("too many header lines")

// readRequest reads one request whose first byte is already buffered. Its head and body are
// bounded by max bytes and its head by maxHeaders lines (0: no line limit), so a client cannot
// make the server buffer without limit; parsing is then done by gortsplib's codec on the bounded
// copy.
func readRequest(br *bufio.Reader, max, maxHeaders int) (*base.Request, error) {
	head := make([]byte, 0, 512)
	lines := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(head)+len(line) > max {
			return nil, fmt.Errorf("%w: head exceeds %d bytes", errTooLarge, max)
		}
		head = append(head, line...)
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			return nil, err
		}
		if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			break
		}
		// the request line plus the header lines
		if lines++; maxHeaders > 0 && lines > maxHeaders+1 {
			return nil, fmt.Errorf("%w: more than %d", errTooManyHeaders, maxHeaders)
		}
	}
	cl, err := contentLength(head)
	if err != nil {
		return nil, err
	}
	if cl > max {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", errTooLarge, cl, max)
	}
	msg := head
	if cl > 0 {
		msg = append(msg, make([]byte, cl)...)
		if _, err := io.ReadFull(br, msg[len(head):]); err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
	}
	var req base.Request
	// The whole message is in msg: a reader the size of msg (not bufio's 4 KiB default) lets the
	// codec peek at any line of it.
	if err := req.Unmarshal(bufio.NewReaderSize(bytes.NewReader(msg), len(msg))); err != nil {
		return nil, fmt.Errorf("malformed request: %w", err)
	}
	return &req, nil
}

// contentLength finds Content-Length in a raw head (case-insensitively, as RFC 2326 headers are).
func contentLength(head []byte) (int, error) {
	for _, line := range bytes.Split(head, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")) {
			continue
		}
		n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("malformed request: invalid Content-Length %q", bytes.TrimSpace(v))
		}
		return n, nil
	}
	return 0, nil
}
