package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/meshgw/meshgw/gateway/identity"
)

const certsUsage = `Usage: meshgw certs -dir DIR -td TRUST_DOMAIN [NODE...]

Creates a test trust domain in DIR: a CA (ca.pem is the bundle, ca.key) and
SPIFFE X509-SVIDs for the control (control.pem/.key, spiffe://TD/meshgw/control)
and for each NODE (NODE.pem/.key, spiffe://TD/meshgw/node/NODE). A CA already in
DIR is reused, so running it again adds nodes; the control's and the named
nodes' SVIDs are issued anew on every run (a rotation, picked up by running
meshgw processes on their next connection). Keys are written with mode 0600.
For tests and trials; production identities come from SPIRE.
`

// cmdCerts implements `meshgw certs`.
func cmdCerts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, certsUsage) }
	dir := fs.String("dir", "", "output directory")
	td := fs.String("td", "", "trust domain")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dir == "" || *td == "" {
		fmt.Fprintf(stderr, "meshgw certs: -dir and -td are required\n\n%s", certsUsage)
		return 2
	}
	written, err := identity.Mint(*dir, *td, fs.Args()...)
	for _, p := range written {
		fmt.Fprintf(stdout, "wrote %s\n", p)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshgw certs: %v\n", err)
		return 1
	}
	return 0
}
