package access

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"time"
)

// Callout asks an external HTTP service whether a request may go ahead: a POST of a JSON
// CalloutRequest, where any 2xx answer allows and anything else (including a timeout) denies.
type Callout struct {
	URL     string
	Timeout time.Duration
	client  *http.Client
	// shown is URL with any password masked, for messages.
	shown string
}

// CalloutRequest is the JSON body sent to the callout.
type CalloutRequest struct {
	User string `json:"user"`
	// Password is sent only for Basic credentials of a user the config does not know, i.e. when
	// the callout is the one that authenticates; never for local users or Digest.
	Password string `json:"password,omitempty"`
	Action   Action `json:"action"`
	Path     string `json:"path"`
	IP       string `json:"ip"`
	Query    string `json:"query"`
}

// NewCallout makes a callout to url. Keep-alives are off so that no idle connection (and its
// goroutine) outlives a request; auth callouts are rare next to media.
func NewCallout(url string, timeout time.Duration) *Callout {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	shown := "(invalid URL)"
	if u, err := neturl.Parse(url); err == nil {
		shown = u.Redacted()
	}
	return &Callout{URL: url, Timeout: timeout, shown: shown, client: &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		// A redirect would resend credentials somewhere the operator did not name.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Ask posts r and reports whether the service allowed it, with the HTTP status (0 when no
// answer came) and the transport error, if any.
func (c *Callout) Ask(ctx context.Context, r CalloutRequest) (bool, int, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return false, 0, fmt.Errorf("auth callout: encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return false, 0, fmt.Errorf("auth callout %s: %w", c.shown, err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.client.Do(req)
	if err != nil {
		// net/http already masks the URL's password in its errors
		return false, 0, fmt.Errorf("auth callout: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return res.StatusCode >= 200 && res.StatusCode < 300, res.StatusCode, nil
}
