//go:build tools

// Package tools pins modules used by the tree before their first import lands.
package tools

import (
	_ "github.com/bluenviron/gortsplib/v4"
	_ "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	_ "github.com/pion/rtcp"
	_ "github.com/pion/rtp"
	_ "go.uber.org/goleak"
	_ "golang.org/x/net/ipv4"
	_ "gopkg.in/yaml.v3"
)
