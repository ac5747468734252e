package rtsp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"

	"github.com/meshgw/meshgw/rtsp/access"
)

// credentials is a parsed Authorization header.
type credentials struct {
	basic    bool
	user     string
	password string // Basic only
	// Digest
	realm, nonce, uri, response string
	alg                         string // access.MD5 or access.SHA256
}

// parseAuthorization decodes one Authorization header value. Digest goes through gortsplib's
// codec; Basic is decoded here because gortsplib refuses passwords that contain ":", which
// RFC 7617 §2 allows (only the user-id may not contain one).
func parseAuthorization(v base.HeaderValue) (credentials, error) {
	if len(v) != 1 {
		return credentials{}, fmt.Errorf("authorization header given %d times", len(v))
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v[0]), " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return credentials{}, errors.New("basic credentials are not base64")
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return credentials{}, errors.New("basic credentials lack the \":\" between user and password")
		}
		return credentials{basic: true, user: user, password: pass}, nil
	case strings.EqualFold(scheme, "Digest"):
		var h headers.Authorization
		if err := h.Unmarshal(base.HeaderValue{"Digest " + rest}); err != nil {
			return credentials{}, fmt.Errorf("digest credentials: %w", err)
		}
		cr := credentials{user: h.Username, realm: h.Realm, nonce: h.Nonce, uri: h.URI, response: h.Response, alg: access.MD5}
		if h.Algorithm != nil && *h.Algorithm == headers.AuthAlgorithmSHA256 {
			cr.alg = access.SHA256
		}
		return cr, nil
	}
	return credentials{}, fmt.Errorf("authorization scheme %q is not Basic or Digest", scheme)
}

// Nonces are stateless: a timestamp and an HMAC over it and the client's address under a key
// drawn when the server starts. A nonce therefore expires (NonceLifetime), works only from the
// address it was issued to, and dies with the process, without a table an attacker could fill.
const nonceTSLen = 8

func (s *Server) newNonce(addr netip.Addr, now time.Time) string {
	var ts [nonceTSLen]byte
	binary.BigEndian.PutUint64(ts[:], uint64(now.UnixNano()))
	return hex.EncodeToString(ts[:]) + hex.EncodeToString(s.nonceMAC(ts[:], addr))
}

func (s *Server) nonceMAC(ts []byte, addr netip.Addr) []byte {
	m := hmac.New(sha256.New, s.nonceKey[:])
	m.Write(ts)
	a := addr.Unmap().As16()
	m.Write(a[:])
	return m.Sum(nil)[:16]
}

// checkNonce reports whether nonce was issued by this server to addr (valid) and whether it is
// still inside its lifetime (fresh).
func (s *Server) checkNonce(nonce string, addr netip.Addr, now time.Time) (valid, fresh bool) {
	raw, err := hex.DecodeString(nonce)
	if err != nil || len(raw) != nonceTSLen+16 {
		return false, false
	}
	if !hmac.Equal(raw[nonceTSLen:], s.nonceMAC(raw[:nonceTSLen], addr)) {
		return false, false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(raw[:nonceTSLen])))
	age := now.Sub(issued)
	return true, age >= 0 && age <= s.cfg.NonceLifetime
}

// challenge is the WWW-Authenticate header of a 401: Digest SHA-256 first (RFC 7616 §3.7 lists the
// preferred first), then MD5 last because FFmpeg and GStreamer take the last Digest challenge and
// know only MD5; Basic only where it may be used (TLS, or allow_basic_plain). A Digest algorithm
// no user has an HA1 for is not offered: it could never succeed.
func (c *conn) challenge(stale bool) base.HeaderValue {
	p := c.s.authPolicy()
	nonce := c.s.newNonce(c.remote.Addr(), time.Now())
	var out base.HeaderValue
	for _, alg := range []headers.AuthAlgorithm{headers.AuthAlgorithmSHA256, headers.AuthAlgorithmMD5} {
		name := access.MD5
		if alg == headers.AuthAlgorithmSHA256 {
			name = access.SHA256
		}
		if !p.HasDigest(name) {
			continue
		}
		a := alg
		h := headers.Authenticate{Method: headers.AuthMethodDigest, Realm: p.Realm, Nonce: nonce, Algorithm: &a}
		if stale {
			t := "true"
			h.Stale = &t
		}
		out = append(out, h.Marshal()...)
	}
	if c.secure || p.AllowBasicPlain {
		out = append(out, headers.Authenticate{Method: headers.AuthMethodBasic, Realm: p.Realm}.Marshal()...)
	}
	return out
}

// authRoute is the route a Digest uri names, by the same rules the request URL is read with, so a
// response computed for one route cannot open another.
func authRoute(method base.Method, uri string) (string, bool) {
	u, err := base.ParseURL(uri)
	if err != nil {
		// Some clients send only the path (RFC 7616 allows the request-target form).
		if !strings.HasPrefix(uri, "/") {
			return "", false
		}
		p, _, _ := strings.Cut(uri, "?")
		u = &base.URL{Path: p}
	}
	if method == base.Setup {
		b, _, _ := splitTrackPath("/" + strings.Trim(u.Path, "/"))
		return strings.Trim(b, "/"), true
	}
	return routePath(u), true
}

const reasonNoCredentials = "no credentials"

// denial is an authorization refusal: the response and why (for the log).
type denial struct {
	res    *base.Response
	reason string
	user   string
	// hangup closes the connection after the response, so a refused guesser pays a new
	// connection (and TLS handshake) for its next try and does not hold an unauthenticated slot.
	hangup bool
}

// checkBan refuses every request of a banned address with 403 without looking at credentials;
// the caller closes the connection so a guesser pays a new handshake for each try.
func (c *conn) checkBan() *denial {
	until, banned := c.s.cfg.Bans.Banned(c.remote.Addr())
	if !banned {
		return nil
	}
	return &denial{res: statusf(base.StatusForbidden, "address banned after repeated authentication failures"),
		reason: "address banned until " + until.UTC().Format(time.RFC3339)}
}

// checkBanNew is checkBan for a connection that has not been authorized yet.
func (c *conn) checkBanNew() *denial {
	if c.authed {
		return nil
	}
	return c.checkBan()
}

// authorize decides whether req may do action on route. It returns nil to go ahead; otherwise
// the response to send, after logging the reason (never a password).
func (c *conn) authorize(req *base.Request, action access.Action, route string) *base.Response {
	d := c.decide(req, action, route)
	if d == nil {
		c.markAuthenticated()
		return nil
	}
	c.hangup = c.hangup || d.hangup
	// A challenge to a client that sent no credentials yet is how every login starts: Info, not Warn.
	level := slog.LevelWarn
	if d.reason == reasonNoCredentials {
		level = slog.LevelInfo
	}
	c.log.Log(c.s.ctx, level, "rtsp access denied", "reason", d.reason, "user", d.user, "action", string(action), "path", route,
		"method", string(req.Method), "status", int(d.res.StatusCode))
	return d.res
}

func (c *conn) decide(req *base.Request, action access.Action, route string) *denial {
	p := c.s.authPolicy()
	if p == nil {
		return nil
	}
	addr := c.remote.Addr()
	if d := c.checkBan(); d != nil {
		return d
	}
	if ok, why := p.AddressAllowed(addr, route); !ok {
		return &denial{res: statusf(base.StatusForbidden, "%s", why), reason: why}
	}
	if !p.Enabled {
		return nil
	}
	h, has := req.Header["Authorization"]
	if !has {
		if p.Anonymous.Allows(action, route) {
			return c.callout(req, action, route, "", "", nil, false)
		}
		return c.unauthorized(reasonNoCredentials, "", nil, false)
	}
	cr, err := parseAuthorization(h)
	if err != nil {
		return &denial{res: statusf(base.StatusBadRequest, "malformed Authorization header"), reason: "malformed Authorization header: " + err.Error()}
	}
	u := p.Users[cr.user]
	if cr.basic {
		if !c.secure && !p.AllowBasicPlain {
			return c.unauthorized("Basic credentials over plain RTSP refused (use RTSPS or Digest, or set auth.allow_basic_plain)", cr.user, nil, false)
		}
		att, d := c.reserve(cr.user)
		if d != nil {
			return d
		}
		defer att.Release()
		if u == nil && p.Callout != nil {
			// Not ours: the callout authenticates it, so it gets the password.
			return c.callout(req, action, route, cr.user, cr.password, att, true)
		}
		var h *access.PasswordHash
		if u != nil {
			h = u.Password
		}
		// h nil (unknown user, or one with only Digest HA1 values) runs the dummy check, in the
		// same slots, so the answer's timing does not tell which user names exist.
		ok, err := c.s.verifier.Verify(c.s.ctx, h, cr.password)
		switch {
		case err != nil:
			return c.busy(cr.user, err)
		case u == nil:
			return c.unauthorized("unknown user", cr.user, att, false)
		case h == nil:
			return c.unauthorized("user has no password hash, only Digest HA1 values; Basic cannot be checked", cr.user, att, false)
		case !ok:
			return c.unauthorized("wrong password", cr.user, att, false)
		}
	} else {
		if d := c.checkDigest(req, cr, u, route); d != nil {
			return d
		}
	}
	if !u.Allows(action, route) {
		return &denial{res: statusf(base.StatusForbidden, "user may not %s this route", action), reason: "no " + string(action) + " permission", user: cr.user}
	}
	if c.user != cr.user {
		scheme := "basic"
		if !cr.basic {
			scheme = "digest " + cr.alg
		}
		c.log.Info("rtsp authenticated", "user", cr.user, "scheme", scheme, "action", string(action), "path", route)
	}
	c.user = cr.user
	return c.callout(req, action, route, cr.user, "", nil, false)
}

// reserve takes the attempt's place in the address's failure count before a password is
// checked, so guesses in flight count toward the ban before any hash runs. An address whose
// failed and pending attempts reach auth.max_failures gets 403 without a check, and the
// connection is closed as for a banned address.
func (c *conn) reserve(user string) (*access.Attempt, *denial) {
	att, ok := c.s.cfg.Bans.Reserve(c.remote.Addr())
	if !ok {
		return nil, &denial{res: statusf(base.StatusForbidden, "too many failed logins from this address"),
			reason: "address has reached auth.max_failures with failed and pending logins", user: user, hangup: true}
	}
	return att, nil
}

// checkDigest checks Digest credentials for u (nil: unknown user). Realm, nonce and uri errors
// are not guesses; a wrong response is, and counts toward the ban like a wrong Basic password.
func (c *conn) checkDigest(req *base.Request, cr credentials, u *access.User, route string) *denial {
	p := c.s.authPolicy()
	if cr.realm != p.Realm {
		return c.unauthorized("digest realm "+fmt.Sprintf("%q", cr.realm)+" is not ours", cr.user, nil, false)
	}
	valid, fresh := c.s.checkNonce(cr.nonce, c.remote.Addr(), time.Now())
	if !valid {
		return c.unauthorized("digest nonce not issued to this address by this server", cr.user, nil, false)
	}
	if !fresh {
		return c.unauthorized("digest nonce expired", cr.user, nil, true)
	}
	if r, ok := authRoute(req.Method, cr.uri); !ok || r != route {
		return &denial{res: statusf(base.StatusBadRequest, "digest uri does not name the requested route"), reason: "digest uri names another route", user: cr.user}
	}
	att, d := c.reserve(cr.user)
	if d != nil {
		return d
	}
	defer att.Release()
	var ha1 string
	if u != nil {
		ha1 = u.HA1(cr.alg)
	}
	if ha1 == "" {
		// Unknown user, or no HA1 for this algorithm: the same answer either way, so the
		// response does not tell which user names exist.
		return c.unauthorized("unknown user or no "+cr.alg+" HA1 for the user", cr.user, att, false)
	}
	want := access.DigestHash(cr.alg, strings.ToLower(ha1)+":"+cr.nonce+":"+access.DigestHash(cr.alg, string(req.Method)+":"+cr.uri))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(cr.response))) != 1 {
		return c.unauthorized("wrong password (digest response mismatch)", cr.user, att, false)
	}
	return nil
}

// busy refuses a login whose password check found no free verifier slot in time: 503 with
// Retry-After, and the connection is closed so it does not hold a slot of its own. Nothing was
// hashed and nothing counts toward a ban.
func (c *conn) busy(user string, err error) *denial {
	res := statusf(base.StatusServiceUnavailable, "too many logins being checked; retry later")
	res.Header["Retry-After"] = base.HeaderValue{strconv.Itoa(max(1, int(math.Ceil(c.s.verifier.Wait().Seconds()))))}
	return &denial{res: res, reason: "password check not started: " + err.Error() + " (auth.max_concurrent_hashes, auth.hash_wait)", user: user, hangup: true}
}

// unauthorized answers 401 with a fresh challenge; a non-nil att is confirmed as a failure and
// counts toward the address's ban.
func (c *conn) unauthorized(reason, user string, att *access.Attempt, stale bool) *denial {
	d := &denial{res: statusf(base.StatusUnauthorized, "credentials required"), reason: reason, user: user}
	if ch := c.challenge(stale); len(ch) > 0 {
		d.res.Header["WWW-Authenticate"] = ch
	} else {
		// No user has a Digest HA1 and Basic is not allowed here: no credentials can succeed on
		// this connection, and a 401 without a challenge would leave the client guessing.
		d.res = statusf(base.StatusForbidden, "no login method is available over plain RTSP; use RTSPS")
		d.reason += "; no login method available over plain RTSP"
	}
	if att != nil {
		n, banned := att.Fail()
		d.reason = fmt.Sprintf("%s (failure %d)", reason, n)
		if banned {
			c.log.Warn("rtsp address banned after repeated authentication failures", "failures", n, "ban_time", c.s.cfg.BanTime)
		}
	}
	return d
}

// callout asks the external service when one is configured. external means the callout is the
// authenticator (a Basic user unknown to the config): a refusal then confirms att as a failed
// login.
func (c *conn) callout(req *base.Request, action access.Action, route, user, password string, att *access.Attempt, external bool) *denial {
	co := c.s.authPolicy().Callout
	if co == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.s.ctx, co.Timeout)
	defer cancel()
	q := ""
	if req.URL != nil {
		q = req.URL.RawQuery
	}
	ok, status, err := co.Ask(ctx, access.CalloutRequest{User: user, Password: password, Action: action, Path: route, IP: c.remote.Addr().String(), Query: q})
	if err != nil {
		return &denial{res: statusf(base.StatusServiceUnavailable, "authentication service unavailable"), reason: "auth callout failed: " + err.Error(), user: user}
	}
	if ok {
		if external {
			c.user = user
		}
		return nil
	}
	why := fmt.Sprintf("auth callout answered %d", status)
	if external || user == "" {
		if !external {
			att = nil
		}
		return c.unauthorized(why, user, att, false)
	}
	return &denial{res: statusf(base.StatusForbidden, "refused by the authentication service"), reason: why, user: user}
}
