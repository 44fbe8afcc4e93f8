package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"
)

// The outside judge of the frame reader is github.com/gobwas/ws, a
// WebSocket implementation written apart from this one. judgeRead puts its
// parts together as a server reading a client's bytes: its header reader
// (ws.ReadHeader), its checks of a header a server receives (ws.CheckHeader:
// reserved opcodes and bits, masking, control frames short and final,
// fragments in order), its unmasking (ws.Cipher), its UTF-8 check of text
// (wsutil.UTF8Reader), and, for a close frame, the reading and checks of
// its code and reason that wsutil.ControlHandler makes
// (ws.ParseCloseFrameData, ws.CheckCloseFrameData). FuzzAgainstGobwas holds
// the Reader, ParseClose and ValidText to what it finds, frame by frame.
//
// Where the two may differ, and why, is spelled out below, each time with
// a check that they still do:
//   - gobwas checks a header once all of it is read; the Reader fails a
//     frame from its first bytes (see FuzzAgainstGobwas).
//   - gobwas fails a text message at its first byte that cannot be UTF-8;
//     the hub checks a message once whole (see utf8Timing).
//   - close codes 1012-1014 and 5000 and above (see closeDisagreement).
//   - a close reason that is not UTF-8 (see judgeClose).
// Nothing else is left out: the messages' opcodes and payloads, whole, the
// control frames between fragments, and the close code that ends a read
// are compared for every input.

// verdict is what a reader makes of a client's bytes: the messages and
// control frames it returns, then the close code of the violation that
// ended them (0 for none), or partial when the bytes end inside a frame.
type verdict struct {
	msgs    []Message
	code    uint16
	partial bool
}

// utf8Timing is when the judge checks that a text message is UTF-8. RFC
// 6455, section 8.1, lets an endpoint fail the connection as soon as it
// finds the bytes are not UTF-8, and asks no sooner than the message is
// whole. gobwas fails at the first such byte (wsutil.Reader with
// CheckUTF8, as its Autobahn server does); the hub checks a message once
// the Reader has joined its fragments (ValidText, in Session.message, for
// both of its readers). The two differ only on a fragmented text message
// that ends otherwise before its last fragment: gobwas answers 1007 where
// the hub never sees the message.
type utf8Timing int

const (
	atMessage utf8Timing = iota // once the message is whole, as the hub
	atByte                      // at the first byte that breaks it, as gobwas
)

// judgeRead reads in as gobwas/ws has a server read it, data messages
// bounded by max (none when 0 or less) as Reader.MaxMessage bounds them,
// and text messages checked for UTF-8 at timing.
func judgeRead(t *testing.T, in []byte, max int64, timing utf8Timing) verdict {
	var (
		v     verdict
		r     = bytes.NewReader(in)
		state = ws.StateServerSide
		msg   []byte
		msgOp ws.OpCode
		text  wsutil.UTF8Reader // the text message's bytes so far
	)
	for r.Len() > 0 {
		h, err := ws.ReadHeader(r)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			v.partial = true
			return v
		case errors.Is(err, ws.ErrHeaderLengthMSB):
			v.code = CloseProtocolError
			return v
		case err != nil:
			t.Fatalf("gobwas/ws: a header error the judge does not know: %v", err)
		}
		if ws.CheckHeader(h, state) != nil {
			v.code = CloseProtocolError
			return v
		}
		if h.OpCode.IsData() && max > 0 && h.Length > max-int64(len(msg)) {
			v.code = CloseMessageTooBig
			return v
		}
		if int64(r.Len()) < h.Length {
			v.partial = true
			return v
		}
		p := make([]byte, h.Length)
		_, _ = io.ReadFull(r, p)
		ws.Cipher(p, h.Mask, 0)
		if h.OpCode.IsControl() {
			v.msgs = append(v.msgs, Message{Op: Opcode(h.OpCode), Payload: p})
			continue
		}
		if h.OpCode != ws.OpContinuation {
			msgOp = h.OpCode
			text.Reset(nil)
		}
		if msgOp == ws.OpText {
			text.Source = bytes.NewReader(p)
			_, err := io.Copy(io.Discard, &text)
			if err != nil && timing == atByte {
				v.code = CloseInvalidPayload
				return v
			}
		}
		msg = append(msg, p...)
		if !h.Fin {
			state = state.Set(ws.StateFragmented)
			continue
		}
		state = state.Clear(ws.StateFragmented)
		if msgOp == ws.OpText && !text.Valid() {
			v.code = CloseInvalidPayload
			return v
		}
		v.msgs = append(v.msgs, Message{Op: Opcode(msgOp), Payload: msg})
		msg = nil
	}
	return v
}

// hubRead reads in as the hub does, fed in pieces of step bytes: the
// Reader, then ValidText of each text message it returns.
func hubRead(t *testing.T, in []byte, step int, max int64) verdict {
	msgs, err := readMessages(in, step, max)
	for i, m := range msgs {
		if m.Op == OpText && !ValidText(m.Payload) {
			return verdict{msgs: msgs[:i], code: CloseInvalidPayload}
		}
	}
	v := verdict{msgs: msgs}
	if err != nil {
		var e *Error
		require.ErrorAs(t, err, &e, "a violation has its close code")
		v.code = e.Code
	}
	return v
}

// closeVerdict is what a reader makes of a close frame's payload: the
// close code it answers with (0 for a payload it takes), else the code and
// reason it reads.
type closeVerdict struct {
	answer uint16
	code   uint16
	reason string
}

// judgeClose checks a close frame's payload as wsutil.ControlHandler
// does: no payload is no code (1005, RFC 6455, section 7.1.5) and is not
// checked; any other, one byte too, is read and checked by
// ws.CheckCloseFrameData. That names a reason that is not UTF-8 apart
// (ws.ErrProtocolInvalidUTF8), and the judge answers it with 1007, as
// ParseClose does: ControlHandler closes with 1002 for every fault of a
// close frame, a code RFC 6455 allows as well (section 7.4.1 gives 1007 to
// data not of its type, section 8.1 names no code, and the Autobahn suite,
// case 7.5.1, takes either). The fault found is what is compared.
func judgeClose(p []byte) closeVerdict {
	if len(p) == 0 {
		return closeVerdict{code: CloseNoStatus}
	}
	c, reason := ws.ParseCloseFrameData(p)
	switch err := ws.CheckCloseFrameData(c, reason); {
	case errors.Is(err, ws.ErrProtocolInvalidUTF8):
		return closeVerdict{answer: CloseInvalidPayload}
	case err != nil:
		return closeVerdict{answer: CloseProtocolError}
	}
	return closeVerdict{code: uint16(c), reason: reason}
}

// closeDisagreement is what ParseClose must make of a close payload where
// it rightly differs from gobwas/ws, and why; why is "" where it must
// agree with judgeClose.
func closeDisagreement(p []byte) (want closeVerdict, why string) {
	if len(p) < 2 {
		return closeVerdict{}, ""
	}
	switch code := binary.BigEndian.Uint16(p); {
	case code >= 1012 && code <= 1014:
		// The payload is judged as if its code were 1000, one gobwas/ws
		// knows: the reason is checked the same.
		q := append([]byte{0x03, 0xe8}, p[2:]...)
		want = judgeClose(q)
		if want.answer == 0 {
			want.code = code
		}
		return want, "gobwas/ws knows the codes RFC 6455 listed alone; 1012-1014 were registered with IANA since (section 11.7), and the hub sends 1012 itself"
	case code >= 5000:
		return closeVerdict{answer: CloseProtocolError}, "gobwas/ws takes any code above 4999; RFC 6455, section 7.4.2, gives codes up to 4999 only, so none above may be sent"
	}
	return closeVerdict{}, ""
}

// checkClose holds ParseClose to the judge for one close payload.
func checkClose(t *testing.T, p []byte) {
	var got closeVerdict
	code, reason, err := ParseClose(p)
	if err != nil {
		var e *Error
		require.ErrorAs(t, err, &e, "a violation has its close code")
		got.answer = e.Code
	} else {
		got.code, got.reason = code, reason
	}
	judged := judgeClose(p)
	want, why := closeDisagreement(p)
	if why == "" {
		require.Equal(t, judged, got, "the close payload %x", p)
		return
	}
	require.NotEqual(t, judged, want, "%x: the disagreement explained (%s) is gone", p, why)
	require.Equal(t, want, got, "the close payload %x, where gobwas/ws differs: %s", p, why)
}

// sameMessages requires got to be want: the same opcodes and payloads,
// whole, in order.
func sameMessages(t *testing.T, want, got []Message, what string) {
	type msg struct {
		Op      Opcode
		Payload string
	}
	flat := func(ms []Message) []msg {
		out := make([]msg, 0, len(ms))
		for _, m := range ms {
			out = append(out, msg{m.Op, string(m.Payload)})
		}
		return out
	}
	require.Equal(t, flat(want), flat(got), "%s:\nwant %v\n got %v", what, describe(want), describe(got))
}

// FuzzAgainstGobwas feeds the same bytes to the hub's reading (hubRead:
// the Reader, in pieces of step bytes, and ValidText) and to gobwas/ws
// (judgeRead), and requires the same messages and control frames, in
// order, and the same end: the same close code for a violation, or none.
// Every close frame's payload is read by ParseClose and by gobwas/ws too
// (checkClose). The seeds in testdata/fuzz/FuzzAgainstGobwas are what real
// clients sent, coder/websocket, node's WebSocket and Chromium, and those
// bytes spoiled in the ways a server must refuse (TestClientSeeds).
func FuzzAgainstGobwas(f *testing.F) {
	f.Add(text(`{"op":"subscribe","channel":"group:G"}`), 3, int64(0))
	f.Add(join(frag(OpText, "he"), clientFrame(finBit|byte(OpPing), []byte("p"), 0), last("llo")), 1, int64(4))
	f.Add(join(frag(OpText, "caf\xc3"), last("\xa9")), 1, int64(0))
	f.Add(join(frag(OpText, "\xed\xa0\x80"), clientFrame(finBit|0x3, nil, 0)), 0, int64(0))
	f.Add(clientFrame(finBit|byte(OpClose), []byte{0x03, 0xf4, 'x'}, 0), 2, int64(0))
	f.Add(clientFrame(finBit|byte(OpClose), []byte{0x13, 0x88}, 0), 2, int64(0))
	f.Add(clientFrame(finBit|byte(OpClose), []byte{0x03, 0xe8, 0xff}, 0), 2, int64(0))
	f.Add(clientFrame(finBit|byte(OpClose), []byte{0x03}, 0), 2, int64(0))
	f.Add(append([]byte{finBit | byte(OpText), maskBit | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, 1, 2, 3, 4), 4, int64(0))
	f.Fuzz(func(t *testing.T, in []byte, step int, max int64) {
		if step <= 0 || step > len(in) {
			step = len(in)
		}
		got := hubRead(t, in, step, max)
		judged := in
		want := judgeRead(t, judged, max, atMessage)
		if got.code != 0 && want.partial {
			// The Reader sees a violation in a frame's first bytes (its
			// reserved bits, opcode, mask bit, length); gobwas/ws reads a
			// whole header, mask key and all, before it checks one. With
			// the header's other bytes made up, it must see the same
			// violation.
			judged = append(bytes.Clone(in), make([]byte, maxHeader)...)
			want = judgeRead(t, judged, max, atMessage)
		}
		sameMessages(t, want.msgs, got.msgs, "the messages and control frames")
		require.Equal(t, want.code, got.code, "the close code of the violation (0: none)")

		// gobwas's own timing of the UTF-8 check (utf8Timing): the same,
		// but that it may stop at a fragment of a text message that was
		// never whole, and then the hub returned no data message after.
		eager := judgeRead(t, judged, max, atByte)
		n := len(eager.msgs)
		require.LessOrEqual(t, n, len(want.msgs), "gobwas stops no later checking each byte")
		sameMessages(t, eager.msgs, want.msgs[:n], "the messages before gobwas's UTF-8 check stopped")
		if eager.code == CloseInvalidPayload {
			for _, m := range want.msgs[n:] {
				require.True(t, m.Op.control(), "a data message %s after a text message that was not UTF-8", describe([]Message{m}))
			}
		} else {
			require.Equal(t, want, eager, "no fragment of a text message broke UTF-8, so the timing is no matter")
		}

		for _, m := range got.msgs {
			if m.Op == OpClose {
				checkClose(t, m.Payload)
			}
		}
	})
}

// describe names each message by its opcode, length and the start of its
// payload, for a failure that can be read.
func describe(msgs []Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%#x %d %.64q", byte(m.Op), len(m.Payload), m.Payload))
	}
	return out
}
