package config

import (
	"strings"
	"testing"
)

const apiUser = `
auth:
  users:
    ops:
      password_hash: "$2a$10$C6UzMDM.H6dfI/f/IKcEeO5J5xH0J1Q0dkNLjQyN7z3bQ9X3tX5yW"
      api: admin
      api_token_sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08
`

func TestAPIKeys(t *testing.T) {
	if c := mustParse(t, "routes:\n  x:\n"); c.API.Enabled() {
		t.Errorf("api on without the section: %+v", c.API)
	}
	c := mustParse(t, "api:\nroutes:\n  x:\n")
	if c.API != (API{Listen: DefaultAPIListen, MetricsAuth: true}) {
		t.Errorf("defaults: %+v", c.API)
	}
	c = mustParse(t, apiUser+`
api:
  listen: 0.0.0.0:9997
  cert: c.pem
  key: k.pem
  pprof: true
  metrics_auth: false
routes:
  x:
`)
	if c.API != (API{Listen: "0.0.0.0:9997", Cert: "c.pem", Key: "k.pem", Pprof: true}) {
		t.Errorf("api %+v", c.API)
	}
	u := c.Auth.Users[0]
	if u.API != APIAdmin || u.APITokenSHA256 != "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" {
		t.Errorf("user %q api %q token %q", u.Name, u.API, u.APITokenSHA256)
	}
	// mTLS alone may open a non-loopback listener
	mustParse(t, "api:\n  listen: :9997\n  cert: c\n  key: k\n  client_ca: ca\nroutes:\n  x:\n")
	// a node with public metrics and no pprof serves nothing that needs credentials
	mustParse(t, "node:\n  control: ctl:8443\napi:\n  listen: :9997\n  metrics_auth: false\n")
	// a token-only user
	mustParse(t, "auth:\n  users:\n    bot:\n      api: read\n      api_token_sha256: "+strings.Repeat("ab", 32)+"\nroutes:\n  x:\n")
}

func TestAPIErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"api:\n  listen: :9997\nroutes:\n  x:\n":                                                             `t.yaml:1: api.listen ":9997" is reachable from other hosts but nobody would need credentials`,
		"api:\n  listen: 10.0.0.1:9997\nroutes:\n  x:\n":                                                     `t.yaml:1: api.listen "10.0.0.1:9997" is reachable`,
		apiUser + "api:\n  listen: :9997\nroutes:\n  x:\n":                                                   `t.yaml:8: api.listen ":9997" is reachable from other hosts and API users send passwords`,
		"api:\n  cert: c\nroutes:\n  x:\n":                                                                   "t.yaml:1: api: cert and key go together",
		"api:\n  client_ca: ca\nroutes:\n  x:\n":                                                             "t.yaml:1: api.client_ca: client certificates need HTTPS",
		"api:\n  pprof: maybe\nroutes:\n  x:\n":                                                              "t.yaml:2: api.pprof:",
		"api:\n  listen: nope\nroutes:\n  x:\n":                                                              `t.yaml:2: api.listen: "nope" is not host:port`,
		"api:\n  port: 1\nroutes:\n  x:\n":                                                                   `t.yaml:2: api: unknown key "port"`,
		"node:\n  control: ctl:8443\napi:\n  listen: :9997\n":                                                `t.yaml:3: api.listen ":9997" is reachable`,
		"auth:\n  users:\n    u:\n      api: root\nroutes:\n  x:\n":                                          `t.yaml:4: auth.users.u.api: "root" is not one of read, admin`,
		"auth:\n  users:\n    u:\n      api: read\n      api_token_sha256: abc\nroutes:\n  x:\n":             "t.yaml:5: auth.users.u.api_token_sha256: want 64 hex digits",
		"auth:\n  users:\n    u:\n      api_token_sha256: " + strings.Repeat("ab", 32) + "\nroutes:\n  x:\n": "t.yaml:3: auth.users.u: api_token_sha256 without an api: role",
	} {
		_, err := Parse("t.yaml", []byte(yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", yaml, err, want)
		}
	}
}
