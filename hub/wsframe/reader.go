package wsframe

import (
	"encoding/binary"
	"fmt"
)

// Message is a client's whole data message (its fragments joined) or one
// of its control frames.
type Message struct {
	Op      Opcode // never OpContinuation
	Payload []byte // unmasked
}

// Reader parses the frames a client sends from the bytes read from its
// socket. It holds bytes only while a frame is partial: a connection whose
// client sends nothing holds no buffer.
//
// The first violation of the protocol ends the Reader: Next returns the
// same [*Error] from then on.
type Reader struct {
	// MaxMessage bounds a data message's payload, its fragments joined: a
	// larger one is an [*Error] with 1009, known from the frame's header
	// before its payload arrives. Zero means no bound.
	MaxMessage int64

	in    []byte // bytes fed and not parsed yet
	own   bool   // in is the Reader's copy, not the caller's buffer
	msg   []byte // the fragments of a message in progress, unmasked
	msgOp Opcode // that message's opcode; OpContinuation when none
	err   error
}

// Feed gives the Reader the bytes read next. Call Next until it returns
// no message before feeding more. The Reader unmasks frames in p itself,
// and keeps p only until Next returns no message: the bytes of a partial
// frame are copied then, so that the caller may reuse p.
func (r *Reader) Feed(p []byte) {
	switch {
	case len(r.in) == 0:
		r.in, r.own = p, false
	case r.own:
		r.in = append(r.in, p...)
	default:
		r.in = append(append(make([]byte, 0, len(r.in)+len(p)), r.in...), p...)
		r.own = true
	}
}

// Next returns the next whole message or control frame in the bytes fed,
// or ok false when they hold none yet. A message's payload is valid until
// the next Feed.
func (r *Reader) Next() (m Message, ok bool, err error) {
	if r.err != nil {
		return Message{}, false, r.err
	}
	for {
		m, n, whole, err := r.parse()
		switch {
		case err != nil:
			r.err, r.in, r.msg = err, nil, nil
			return Message{}, false, err
		case n == 0:
			r.keep()
			return Message{}, false, nil
		}
		r.in = r.in[n:]
		if whole {
			return m, true, nil
		}
	}
}

// keep copies what is left of the caller's bytes, a partial frame, and
// drops the Reader's hold on them.
func (r *Reader) keep() {
	switch {
	case len(r.in) == 0:
		r.in, r.own = nil, false
	case !r.own:
		r.in = append([]byte(nil), r.in...)
		r.own = true
	}
}

// parse reads one frame at the start of r.in: n is its length, 0 if it is
// not all there yet; whole says m is a message (not a fragment taken in).
func (r *Reader) parse() (m Message, n int, whole bool, err error) {
	b := r.in
	if len(b) < 2 {
		return Message{}, 0, false, nil
	}
	fin := b[0]&finBit != 0
	op := Opcode(b[0] & 0x0f)
	if b[0]&rsvBits != 0 {
		return Message{}, 0, false, protocolError("a reserved bit is set, and no extension gives it a meaning")
	}
	switch op {
	case OpContinuation, OpText, OpBinary, OpClose, OpPing, OpPong:
	default:
		return Message{}, 0, false, protocolError(fmt.Sprintf("opcode %#x is reserved", byte(op)))
	}
	if b[1]&maskBit == 0 {
		return Message{}, 0, false, protocolError("the frame is not masked, as a client's must be")
	}
	size, hl := uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return Message{}, 0, false, nil
		}
		size, hl = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return Message{}, 0, false, nil
		}
		size, hl = binary.BigEndian.Uint64(b[2:]), 10
		if size>>63 != 0 {
			return Message{}, 0, false, protocolError("a 64-bit length with its most significant bit set")
		}
	}
	if op.control() {
		if size > MaxControlPayload {
			return Message{}, 0, false, protocolError(fmt.Sprintf("a control frame carries %d bytes, over %d", size, MaxControlPayload))
		}
		if !fin {
			return Message{}, 0, false, protocolError("a control frame in pieces: its FIN bit is clear")
		}
	} else {
		switch {
		case op == OpContinuation && r.msgOp == OpContinuation:
			return Message{}, 0, false, protocolError("a continuation, and no message was begun")
		case op != OpContinuation && r.msgOp != OpContinuation:
			return Message{}, 0, false, protocolError("a new message before the last one's final fragment")
		}
		if r.MaxMessage > 0 && size+uint64(len(r.msg)) > uint64(r.MaxMessage) {
			return Message{}, 0, false, &Error{Code: CloseMessageTooBig, Reason: fmt.Sprintf("message larger than %d bytes", r.MaxMessage)}
		}
	}
	hl += 4 // the mask key
	if len(b) < hl || uint64(len(b)-hl) < size {
		return Message{}, 0, false, nil
	}
	key := b[hl-4 : hl]
	payload := b[hl : hl+int(size)]
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	n = hl + int(size)
	switch {
	case op.control():
		return Message{Op: op, Payload: payload}, n, true, nil
	case op != OpContinuation && fin:
		return Message{Op: op, Payload: payload}, n, true, nil
	case op != OpContinuation:
		r.msgOp = op
	}
	r.msg = append(r.msg, payload...)
	if !fin {
		return Message{}, n, false, nil
	}
	m = Message{Op: r.msgOp, Payload: r.msg}
	r.msg, r.msgOp = nil, OpContinuation
	return m, n, true, nil
}
