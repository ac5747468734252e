// Package upgrade hands a running meshgw's listening sockets to its successor (a new binary or a
// planned restart) over a Unix socket, the way nginx's USR2 and HAProxy's seamless reload do, so
// no connection is refused while the process changes.
//
// The running process (Offer) listens on a Unix socket; a successor started with the same socket
// path (Take) connects and receives the listening sockets' file descriptors (SCM_RIGHTS) with
// their names. Once the successor serves on them it says so (Inherited.Ready); only then does the
// predecessor stop accepting, release the Unix socket path (Inherited.Wait returns) and drain:
// the connections it already has stay with it until they end or a deadline passes. A successor
// that dies before Ready leaves the predecessor serving as before.
//
// Established RTSP connections and their sessions are not moved: they stay on the predecessor
// until they end. RTSPS connections could not move anyway (crypto/tls cannot export or import a
// live connection's keys and sequence numbers safely).
package upgrade
