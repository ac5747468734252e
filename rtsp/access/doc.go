// Package access decides who may read and publish which routes: users with hashed passwords
// (argon2id, bcrypt) and Digest HA1 values, route patterns, address allow lists, the per-address
// failure counter that bans guessers (counting checks in flight), the bounded pool password
// hashes run in, and the optional HTTP callout to an external service.
//
// It knows nothing of RTSP: the front door (package rtsp) parses Authorization headers, issues
// challenges and nonces and does the Digest arithmetic, then asks a Policy for the verdict. Keeping
// the rules here lets the config loader validate them and `meshgw passwd` produce them without
// pulling in the server.
package access
