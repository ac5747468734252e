// Package spiretest runs a real SPIRE server and agent on loopback for tests
// that need identities issued through the SPIFFE Workload API rather than
// minted files.
//
// The SPIRE binaries (spire-server and spire-agent, v1.13.0 as built by
// scripts/spire.sh) are taken from the directory named by MESHGW_SPIRE_BIN.
// When it is unset the test is skipped, unless MESHGW_REQUIRE_SPIRE=1 is set
// (as in CI), in which case it fails. Everything Start runs or writes is
// stopped and removed when the test ends.
package spiretest
