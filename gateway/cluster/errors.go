package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/meshgw/meshgw/gateway/api"
	"github.com/meshgw/meshgw/gateway/node"
)

// Code classifies a failed command the way the node answered it (api.Code on the wire).
type Code int32

// The codes of a failed command.
const (
	CodeOK          = Code(api.Code_OK)
	CodeInvalid     = Code(api.Code_INVALID)     // the command or its flow is malformed
	CodeNotFound    = Code(api.Code_NOT_FOUND)   // the flow or stream is not on the node
	CodeConflict    = Code(api.Code_CONFLICT)    // the command contradicts what the node holds
	CodeUnavailable = Code(api.Code_UNAVAILABLE) // the node cannot do it now; a retry may help
	CodeInternal    = Code(api.Code_INTERNAL)    // anything else
)

// String returns the wire name of the code.
func (c Code) String() string { return api.Code(c).String() }

// Error is a command the node refused, with the node's code and message. A NOT_FOUND error
// satisfies errors.Is(err, node.ErrNotFound), so the control treats a remote node like its local
// one; errors.Is(err, &Error{Code: c}) matches any Error with code c.
type Error struct {
	Code Code
	Msg  string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Code.String()
	}
	return e.Msg
}

// Is matches node.ErrNotFound for CodeNotFound, and an *Error with the same code (and the same
// message, when the target has one).
func (e *Error) Is(target error) bool {
	if target == node.ErrNotFound {
		return e.Code == CodeNotFound
	}
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

var (
	// ErrNodeDown: the node's stream is gone (ended, timed out or replaced), so the command was
	// not sent, or its answer can no longer come.
	ErrNodeDown = errors.New("node is down")
	// ErrCommandTimeout: the node did not answer a command within ServerConfig.CommandTimeout.
	ErrCommandTimeout = errors.New("no answer from node")
	// ErrNodeTimeout: nothing arrived from the node for ServerConfig.NodeTimeout.
	ErrNodeTimeout = errors.New("node silent")
	// ErrReplaced: a newer attach of the same node name took the node's place.
	ErrReplaced = errors.New("replaced by a newer attach of the same node")
	// ErrServerClosed: the control's server was closed.
	ErrServerClosed = errors.New("cluster server closed")
	// ErrAgentClosed is returned by agent methods after Close.
	ErrAgentClosed = errors.New("cluster agent closed")
)

// codeOf classifies an error of the local data plane for the control.
func codeOf(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return CodeOK
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, node.ErrNotFound):
		return CodeNotFound
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return CodeUnavailable
	}
	return CodeInternal
}

// ackError turns a refused command's ack into an error that keeps the node's code.
func ackError(node, op, id string, a *api.Ack) error {
	code := Code(a.Code)
	if code == CodeOK {
		// a refusal without a code is still a refusal
		code = CodeInternal
	}
	return fmt.Errorf("node %s: %s %s: %w", node, op, id, &Error{Code: code, Msg: a.Message})
}
