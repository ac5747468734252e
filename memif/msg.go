package memif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Protocol constants of memif version 2.0.
const (
	// Cookie is the value every ring starts with.
	Cookie = 0x3E31F20
	// Version is the protocol version, major<<8 | minor.
	Version = 0x0200
	// MsgSize is the size of every control message.
	MsgSize = 128
)

// Type is a control message's type.
type Type uint16

// The control message types.
const (
	TypeNone       Type = 0
	TypeAck        Type = 1
	TypeHello      Type = 2
	TypeInit       Type = 3
	TypeAddRegion  Type = 4
	TypeAddRing    Type = 5
	TypeConnect    Type = 6
	TypeConnected  Type = 7
	TypeDisconnect Type = 8
)

var typeNames = [...]string{"NONE", "ACK", "HELLO", "INIT", "ADD_REGION", "ADD_RING", "CONNECT", "CONNECTED", "DISCONNECT"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type %d", uint16(t))
}

// Field sizes of the string fields.
const (
	NameLen   = 32 // HELLO, INIT, CONNECT and CONNECTED names
	SecretLen = 24 // INIT secret
	ReasonLen = 96 // DISCONNECT reason
)

// RingS2M is ADD_RING's flag for a slave-to-master ring.
const RingS2M = 1

// Interface modes carried in INIT.
const (
	ModeEthernet    = 0
	ModeIP          = 1
	ModePuntInject  = 2
	maxInterfaceMod = ModePuntInject
)

// Message is one control message. Which fields mean something depends on Type; the others are
// zero. Strings are NUL-padded fields on the wire.
type Message struct {
	Type Type

	// Name: HELLO's master name, INIT's slave name, CONNECT's and CONNECTED's interface name.
	Name string

	// HELLO
	MinVersion, MaxVersion uint16
	MaxRegion              uint16 // highest region index the master takes
	MaxM2S, MaxS2M         uint16 // highest ring index per direction
	MaxLog2Ring            uint8

	// INIT
	Version uint16
	ID      uint32
	Mode    uint8
	Secret  string

	// ADD_REGION (Index, Size) and ADD_RING (Flags, Index, Region, Offset, Log2Size, PrivHdr)
	Index    uint16
	Size     uint64
	Flags    uint16
	Region   uint16
	Offset   uint32
	Log2Size uint8
	PrivHdr  uint16

	// DISCONNECT
	Code   uint32
	Reason string
}

// ErrMessage is wrapped by every decoding error.
var ErrMessage = errors.New("memif: bad control message")

var le = binary.LittleEndian

// Decode parses one control message; b must be exactly MsgSize bytes.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) != MsgSize {
		return m, fmt.Errorf("%w: %d bytes, want %d", ErrMessage, len(b), MsgSize)
	}
	m.Type = Type(le.Uint16(b))
	p := b[2:]
	switch m.Type {
	case TypeAck, TypeNone:
	case TypeHello:
		m.Name = cstring(p[:32])
		m.MinVersion, m.MaxVersion = le.Uint16(p[32:]), le.Uint16(p[34:])
		m.MaxRegion, m.MaxM2S, m.MaxS2M = le.Uint16(p[36:]), le.Uint16(p[38:]), le.Uint16(p[40:])
		m.MaxLog2Ring = p[42]
	case TypeInit:
		m.Version, m.ID, m.Mode = le.Uint16(p), le.Uint32(p[2:]), p[6]
		m.Secret = cstring(p[7:31])
		m.Name = cstring(p[31:63])
		if m.Mode > maxInterfaceMod {
			return m, fmt.Errorf("%w: INIT mode %d", ErrMessage, m.Mode)
		}
	case TypeAddRegion:
		m.Index, m.Size = le.Uint16(p), le.Uint64(p[2:])
	case TypeAddRing:
		m.Flags, m.Index, m.Region = le.Uint16(p), le.Uint16(p[2:]), le.Uint16(p[4:])
		m.Offset, m.Log2Size, m.PrivHdr = le.Uint32(p[6:]), p[10], le.Uint16(p[11:])
	case TypeConnect, TypeConnected:
		m.Name = cstring(p[:32])
	case TypeDisconnect:
		m.Code = le.Uint32(p)
		m.Reason = cstring(p[4:100])
	default:
		return m, fmt.Errorf("%w: unknown type %d", ErrMessage, uint16(m.Type))
	}
	return m, nil
}

// Encode writes m into b (MsgSize bytes, zeroed first). A string longer than its field is an
// error, not silently cut.
func (m Message) Encode(b *[MsgSize]byte) error {
	*b = [MsgSize]byte{}
	le.PutUint16(b[:], uint16(m.Type))
	p := b[2:]
	switch m.Type {
	case TypeAck, TypeNone:
		return nil
	case TypeHello:
		le.PutUint16(p[32:], m.MinVersion)
		le.PutUint16(p[34:], m.MaxVersion)
		le.PutUint16(p[36:], m.MaxRegion)
		le.PutUint16(p[38:], m.MaxM2S)
		le.PutUint16(p[40:], m.MaxS2M)
		p[42] = m.MaxLog2Ring
		return putString(p[:32], m.Name, "name")
	case TypeInit:
		le.PutUint16(p, m.Version)
		le.PutUint32(p[2:], m.ID)
		p[6] = m.Mode
		if err := putString(p[7:31], m.Secret, "secret"); err != nil {
			return err
		}
		return putString(p[31:63], m.Name, "name")
	case TypeAddRegion:
		le.PutUint16(p, m.Index)
		le.PutUint64(p[2:], m.Size)
	case TypeAddRing:
		le.PutUint16(p, m.Flags)
		le.PutUint16(p[2:], m.Index)
		le.PutUint16(p[4:], m.Region)
		le.PutUint32(p[6:], m.Offset)
		p[10] = m.Log2Size
		le.PutUint16(p[11:], m.PrivHdr)
	case TypeConnect, TypeConnected:
		return putString(p[:32], m.Name, "name")
	case TypeDisconnect:
		le.PutUint32(p, m.Code)
		// a reason is informative: cut it rather than fail to say it
		r := m.Reason
		if len(r) > ReasonLen {
			r = r[:ReasonLen]
		}
		copy(p[4:100], r)
	default:
		return fmt.Errorf("memif: cannot encode message type %d", uint16(m.Type))
	}
	return nil
}

// cstring is a NUL-padded field's text.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// putString writes s into a NUL-padded field. A field may be full (no NUL), as C peers accept.
func putString(dst []byte, s, what string) error {
	if len(s) > len(dst) {
		return fmt.Errorf("memif: %s %q longer than %d bytes", what, s, len(dst))
	}
	if bytes.IndexByte([]byte(s), 0) >= 0 {
		return fmt.Errorf("memif: %s contains a NUL byte", what)
	}
	copy(dst, s)
	return nil
}
