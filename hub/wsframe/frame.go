package wsframe

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Opcode is a frame's type (RFC 6455, section 5.2).
type Opcode byte

// The opcodes of RFC 6455. A [Message] never has OpContinuation: the
// fragments of a message are joined.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

func (op Opcode) control() bool { return op&0x8 != 0 }

// Close codes a violation of the protocol is answered with (RFC 6455,
// section 7.4.1).
const (
	CloseNormal         = 1000
	CloseProtocolError  = 1002
	CloseNoStatus       = 1005 // never sent: a close frame without a code
	CloseInvalidPayload = 1007
	CloseMessageTooBig  = 1009
)

// MaxControlPayload is the most a control frame may carry (RFC 6455,
// section 5.5).
const MaxControlPayload = 125

const (
	maxCloseReason      = MaxControlPayload - 2
	maxHeader           = 14 // 2 + 8 bytes of length + 4 of mask
	finBit         byte = 0x80
	rsvBits        byte = 0x70
	maskBit        byte = 0x80
)

// Error is a frame that breaks the protocol or a limit: the server closes
// the connection with Code and Reason.
type Error struct {
	Code   uint16
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("wsframe: %s (close %d)", e.Reason, e.Code) }

func protocolError(reason string) *Error { return &Error{Code: CloseProtocolError, Reason: reason} }

// AppendControl appends a server's control frame (ping, pong or close):
// final, unmasked, with payload of at most [MaxControlPayload] bytes.
func AppendControl(b []byte, op Opcode, payload []byte) []byte {
	b = append(b, finBit|byte(op), byte(len(payload)))
	return append(b, payload...)
}

// AppendClose appends a server's close frame with code and reason; the
// reason is cut to the 123 bytes a close frame holds (callers keep it
// shorter, at a UTF-8 boundary). [CloseNoStatus] gives an empty close
// frame, as the RFC asks for the echo of a close frame without a code.
func AppendClose(b []byte, code uint16, reason string) []byte {
	if code == CloseNoStatus {
		return AppendControl(b, OpClose, nil)
	}
	if len(reason) > maxCloseReason {
		reason = reason[:maxCloseReason]
	}
	b = append(b, finBit|byte(OpClose), byte(2+len(reason)))
	b = binary.BigEndian.AppendUint16(b, code)
	return append(b, reason...)
}

// ParseClose reads the payload of a client's close frame: its code
// ([CloseNoStatus] when it has none) and reason. A payload of one byte,
// a code no endpoint may send, or a reason that is not UTF-8 is an
// [*Error].
func ParseClose(p []byte) (code uint16, reason string, err error) {
	switch {
	case len(p) == 0:
		return CloseNoStatus, "", nil
	case len(p) == 1:
		return 0, "", protocolError("a close body of one byte: a code takes two")
	}
	code = binary.BigEndian.Uint16(p)
	if !validCloseCode(code) {
		return 0, "", protocolError(fmt.Sprintf("close code %d is not one an endpoint sends", code))
	}
	if !utf8.Valid(p[2:]) {
		return 0, "", &Error{Code: CloseInvalidPayload, Reason: "the close reason is not UTF-8"}
	}
	return code, string(p[2:]), nil
}

// ValidText says whether p may be the payload of a text message: UTF-8
// (RFC 6455, section 5.6). An endpoint that finds otherwise fails the
// connection (section 8.1), with 1007 ([CloseInvalidPayload]). The
// [Reader] leaves this to its caller, which sees each text message whole.
func ValidText(p []byte) bool { return utf8.Valid(p) }

// validCloseCode says whether an endpoint may send code in a close frame
// (RFC 6455, section 7.4, and the IANA registry it set up): a code the
// protocol defines (1000-1014), but for 1004, reserved, and 1005 and
// 1006, which only name what an endpoint saw; or one of the ranges left to
// libraries (3000-3999) and applications (4000-4999). 1015, the failed
// TLS handshake, is never sent either, and lies beyond the protocol's.
func validCloseCode(code uint16) bool {
	if code >= 3000 {
		return code <= 4999
	}
	return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006
}
