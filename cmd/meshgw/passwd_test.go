package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/meshgw/meshgw/gateway/config"
)

func TestPasswd(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cmdPasswd([]string{"-realm", "cams", "alice"}, strings.NewReader("s3cret\n"), &out, &errb); code != 0 {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Fatal("the password itself was printed")
	}
	c, err := config.Parse("p.yaml", []byte("auth:\n  realm: cams\n  users:\n"+out.String()+"      read: [x]\nroutes: {x: {source: demo}}\n"))
	if err != nil {
		t.Fatalf("printed entry does not load: %v\n%s", err, out.String())
	}
	if u := c.Auth.Users[0]; !u.Password.Verify("s3cret") || u.HA1MD5 == "" || u.HA1SHA256 == "" {
		t.Errorf("user %+v", u)
	}
	for _, c := range []struct {
		args  []string
		stdin string
	}{{nil, "x\n"}, {[]string{"a", "b"}, "x\n"}, {[]string{"a"}, "\n"}, {[]string{"-hash", "md5", "a"}, "x\n"}} {
		if code := cmdPasswd(c.args, strings.NewReader(c.stdin), &out, &errb); code == 0 {
			t.Errorf("passwd %v with %q succeeded", c.args, c.stdin)
		}
	}
}
