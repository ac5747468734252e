package hls

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshgw/meshgw/rtsp/access"
)

const reasonNoCredentials = "no credentials"

// credTTL is how long a verified user and password are remembered. A player sends its
// credentials with every playlist reload and segment (several requests a second with LL-HLS);
// checking each against an argon2id hash would cost a hash per request, so a verified pair is
// remembered, keyed by an HMAC of it under a key drawn at start (the password is not kept).
const credTTL = time.Minute

// maxCreds bounds the remembered pairs; when full, expired ones go, then all.
const maxCreds = 4096

// authorizer applies the access policy to HTTP requests, as the RTSP front door does to RTSP
// ones, with HTTP Basic as the one scheme (browsers and HLS players speak it; Digest over
// hls.js is not a thing).
type authorizer struct {
	ctx      context.Context
	p        *access.Policy
	bans     *access.Bans
	verifier *access.Verifier
	log      *slog.Logger

	key   [32]byte
	mu    sync.Mutex
	creds map[[32]byte]time.Time // HMAC(user, password) -> expiry
}

func newAuthorizer(ctx context.Context, cfg Config, log *slog.Logger) *authorizer {
	a := &authorizer{ctx: ctx, p: cfg.Auth, bans: cfg.Bans, verifier: cfg.Verifier, log: log, creds: map[[32]byte]time.Time{}}
	_, _ = rand.Read(a.key[:])
	return a
}

// denial is a refused request: its status, headers and why (for the log; never a password).
type denial struct {
	status int
	msg    string
	reason string
	user   string
	realm  string // set: answer 401 with a Basic challenge
	retry  time.Duration
}

func (d *denial) write(w http.ResponseWriter) {
	if d.realm != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+strings.ReplaceAll(d.realm, `"`, `'`)+`", charset="UTF-8"`)
	}
	if d.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.retry.Seconds())))))
	}
	http.Error(w, d.msg, d.status)
}

// decide says whether the request may read route: the user name ("" for anonymous) or a denial.
func (a *authorizer) decide(r *http.Request, addr netip.Addr, route string, secure bool) (string, *denial) {
	p := a.p
	if p == nil {
		return "", nil
	}
	if a.bans != nil {
		if until, banned := a.bans.Banned(addr); banned {
			return "", &denial{status: http.StatusForbidden, msg: "address banned after repeated authentication failures",
				reason: "address banned until " + until.UTC().Format(time.RFC3339)}
		}
	}
	if ok, why := p.AddressAllowed(addr, route); !ok {
		return "", &denial{status: http.StatusForbidden, msg: why, reason: why}
	}
	if !p.Enabled {
		return "", nil
	}
	basicOK := secure || p.AllowBasicPlain
	h := r.Header.Get("Authorization")
	if h == "" {
		if p.Anonymous.Allows(access.Read, route) {
			return "", a.callout(r, addr, route, "", "", false)
		}
		return "", a.unauthorized(reasonNoCredentials, "", basicOK)
	}
	user, pass, err := parseBasic(h)
	if err != nil {
		return "", &denial{status: http.StatusBadRequest, msg: "malformed Authorization header", reason: err.Error()}
	}
	if !basicOK {
		return "", &denial{status: http.StatusForbidden, reason: "Basic credentials over plain HTTP", user: user,
			msg: "Basic credentials over plain HTTP are refused: serve HLS over HTTPS (hls.cert, hls.key) or set auth.allow_basic_plain"}
	}
	u := p.Users[user]
	if u == nil && p.Callout != nil {
		// not ours: the callout authenticates it, so it gets the password
		return user, a.callout(r, addr, route, user, pass, true)
	}
	if !a.remembered(user, pass) {
		var att *access.Attempt
		if a.bans != nil {
			var ok bool
			if att, ok = a.bans.Reserve(addr); !ok {
				return "", &denial{status: http.StatusForbidden, msg: "too many failed logins from this address",
					reason: "address has reached auth.max_failures with failed and pending logins", user: user}
			}
			defer att.Release()
		}
		var hash *access.PasswordHash
		if u != nil {
			hash = u.Password
		}
		// hash nil (unknown user, or one with only Digest HA1 values) runs the dummy check, so
		// the timing does not tell which user names exist
		ok, err := a.verifier.Verify(a.ctx, hash, pass)
		switch {
		case err != nil:
			return "", &denial{status: http.StatusServiceUnavailable, msg: "too many logins being checked; retry later",
				reason: "password check not started: " + err.Error(), user: user, retry: a.verifier.Wait()}
		case u == nil || hash == nil || !ok:
			why := "wrong password"
			if u == nil {
				why = "unknown user"
			} else if hash == nil {
				why = "user has no password hash, only Digest HA1 values; Basic cannot be checked"
			}
			if att != nil {
				n, banned := att.Fail()
				why = fmt.Sprintf("%s (failure %d)", why, n)
				if banned {
					a.log.Warn("hls address banned after repeated authentication failures", "failures", n)
				}
			}
			return "", a.unauthorized(why, user, true)
		}
		a.remember(user, pass)
	}
	if !u.Allows(access.Read, route) {
		return "", &denial{status: http.StatusForbidden, msg: "user may not read this route", reason: "no read permission", user: user}
	}
	return user, a.callout(r, addr, route, user, "", false)
}

// unauthorized is a 401 with a Basic challenge, or 403 when Basic cannot be used on this
// listener (a 401 without a usable challenge would leave the client guessing).
func (a *authorizer) unauthorized(reason, user string, basicOK bool) *denial {
	if !basicOK {
		return &denial{status: http.StatusForbidden, reason: reason + "; Basic refused over plain HTTP", user: user,
			msg: "credentials required, and Basic over plain HTTP is refused: serve HLS over HTTPS (hls.cert, hls.key) or set auth.allow_basic_plain"}
	}
	return &denial{status: http.StatusUnauthorized, msg: "credentials required", reason: reason, user: user, realm: a.p.Realm}
}

// callout asks the external service when one is configured; external means it authenticates
// the user (unknown to the config), so a refusal counts as a failed login.
func (a *authorizer) callout(r *http.Request, addr netip.Addr, route, user, password string, external bool) *denial {
	co := a.p.Callout
	if co == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), co.Timeout)
	defer cancel()
	ok, status, err := co.Ask(ctx, access.CalloutRequest{User: user, Password: password, Action: access.Read, Path: route,
		IP: addr.String(), Query: r.URL.RawQuery})
	if err != nil {
		return &denial{status: http.StatusServiceUnavailable, msg: "authentication service unavailable", reason: "auth callout failed: " + err.Error(), user: user}
	}
	if ok {
		return nil
	}
	why := fmt.Sprintf("auth callout answered %d", status)
	if external || user == "" {
		if external && a.bans != nil {
			a.bans.Fail(addr)
		}
		return a.unauthorized(why, user, true)
	}
	return &denial{status: http.StatusForbidden, msg: "refused by the authentication service", reason: why, user: user}
}

func (a *authorizer) credKey(user, pass string) [32]byte {
	m := hmac.New(sha256.New, a.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(pass))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

func (a *authorizer) remembered(user, pass string) bool {
	k := a.credKey(user, pass)
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := a.creds[k]
	return ok && time.Now().Before(exp)
}

func (a *authorizer) remember(user, pass string) {
	k := a.credKey(user, pass)
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.creds) >= maxCreds {
		for c, exp := range a.creds {
			if !now.Before(exp) {
				delete(a.creds, c)
			}
		}
		if len(a.creds) >= maxCreds {
			clear(a.creds)
		}
	}
	a.creds[k] = now.Add(credTTL)
}

// parseBasic decodes an HTTP Basic Authorization value (RFC 7617). A password may contain ":";
// the user name may not.
func parseBasic(h string) (user, pass string, err error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", fmt.Errorf("authorization scheme %q is not Basic", scheme)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", errors.New("basic credentials are not base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("basic credentials lack the \":\" between user and password")
	}
	return user, pass, nil
}
