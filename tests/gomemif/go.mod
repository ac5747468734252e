module github.com/meshgw/meshgw/tests/gomemif

go 1.24.0

require go.fd.io/govpp/extras v0.1.0
