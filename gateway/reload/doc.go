// Package reload reloads meshgw's config file into a running process: on request (SIGHUP, the
// API's reload action) and when the file changes (watch_config, on by default). It loads and
// validates the file, logs every problem of an invalid one as FILE:LINE and keeps the running
// config, and hands a valid one to its target (gateway.Gateway.Reload, which diffs and applies
// it). It is a package of its own so the command and the API share one reload: Reloader.Reload
// is a func(context.Context) error.
package reload
