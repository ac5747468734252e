package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/meshgw/meshgw/gateway/config"
)

const passwdUsage = `Usage: meshgw passwd [-realm REALM] [-hash argon2id|bcrypt] [-digest=false] USER < password

Reads the password from the first line of standard input (never from the command
line, where other users could see it in the process list) and prints the
auth.users entry for USER: password_hash (argon2id by default, or bcrypt), used
for Basic credentials, and digest_ha1_md5 / digest_ha1_sha256 for Digest, which
are bound to REALM (auth.realm, default "meshgw"). HA1 values are password
equivalents for that realm: keep the config as secret as the passwords.
Without them (-digest=false) the user can log in only with Basic, which meshgw
accepts only over RTSPS unless auth.allow_basic_plain is set.
`

// cmdPasswd implements `meshgw passwd`.
func cmdPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, passwdUsage) }
	realm := fs.String("realm", "meshgw", "auth.realm the Digest HA1 values are bound to")
	kind := fs.String("hash", "argon2id", "password hash: argon2id or bcrypt")
	digest := fs.Bool("digest", true, "also print Digest HA1 values")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "meshgw passwd: name exactly one USER\n\n%s", passwdUsage)
		return 2
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "meshgw passwd: read password: %v\n", err)
		return 1
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		fmt.Fprintln(stderr, "meshgw passwd: the password (first line of standard input) is empty")
		return 2
	}
	entry, err := config.UserEntry(fs.Arg(0), *realm, password, *kind, *digest)
	if err != nil {
		fmt.Fprintf(stderr, "meshgw passwd: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, entry)
	return 0
}
