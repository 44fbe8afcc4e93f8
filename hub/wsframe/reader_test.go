package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clientFrame encodes a frame as a client sends it: masked, with the
// shortest length encoding, or the one asked for by wide (2 or 8 bytes).
func clientFrame(first byte, payload []byte, wide int) []byte {
	b := []byte{first}
	switch n := len(payload); {
	case wide == 8 || n >= 1<<16:
		b = binary.BigEndian.AppendUint64(append(b, maskBit|127), uint64(n))
	case wide == 2 || n >= 126:
		b = binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	default:
		b = append(b, maskBit|byte(n))
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

func text(p string) []byte            { return clientFrame(finBit|byte(OpText), []byte(p), 0) }
func frag(op Opcode, p string) []byte { return clientFrame(byte(op), []byte(p), 0) }
func last(p string) []byte            { return clientFrame(finBit|byte(OpContinuation), []byte(p), 0) }
func join(frames ...[]byte) []byte    { return bytes.Join(frames, nil) }

// read feeds in to a Reader in pieces of step bytes (all at once when
// step is 0) and returns what it gave: one string per message, "op:payload",
// and the error that ended it.
func read(in []byte, step int, max int64) ([]string, error) {
	msgs, err := readMessages(in, step, max)
	var got []string
	for _, m := range msgs {
		got = append(got, fmt.Sprintf("%x:%s", byte(m.Op), m.Payload))
	}
	return got, err
}

// readMessages is read, returning copies of the messages.
func readMessages(in []byte, step int, max int64) ([]Message, error) {
	r := Reader{MaxMessage: max}
	in = bytes.Clone(in) // the Reader unmasks in place
	if step == 0 {
		step = len(in) + 1
	}
	var got []Message
	for len(in) > 0 {
		n := min(step, len(in))
		// A fresh buffer each time, scribbled over after: the Reader must
		// not keep the caller's bytes past Next reporting no message.
		p := bytes.Clone(in[:n])
		in = in[n:]
		r.Feed(p)
		for {
			m, ok, err := r.Next()
			if err != nil {
				return got, err
			}
			if !ok {
				break
			}
			got = append(got, Message{Op: m.Op, Payload: bytes.Clone(m.Payload)})
		}
		for i := range p {
			p[i] = 0xee
		}
	}
	return got, nil
}

func TestReader(t *testing.T) {
	big := string(bytes.Repeat([]byte("b"), 70000))
	for _, tc := range []struct {
		name string
		in   []byte
		max  int64
		want []string
		code uint16 // of the error that ends the read; 0 for none
	}{
		{"one text frame", text(`{"op":"ping"}`), 0, []string{`1:{"op":"ping"}`}, 0},
		{"several in one read", join(text("a"), text("bb"), text("")), 0, []string{"1:a", "1:bb", "1:"}, 0},
		{"binary", clientFrame(finBit|byte(OpBinary), []byte{1, 2}, 0), 0, []string{"2:\x01\x02"}, 0},
		{"16-bit length", clientFrame(finBit|byte(OpText), []byte("short"), 2), 0, []string{"1:short"}, 0},
		{"64-bit length", clientFrame(finBit|byte(OpText), []byte("short"), 8), 0, []string{"1:short"}, 0},
		{"large", text(big), 0, []string{"1:" + big}, 0},
		{"fragments joined, control frames between them",
			join(frag(OpText, "he"), clientFrame(finBit|byte(OpPing), []byte("p"), 0), clientFrame(byte(OpContinuation), []byte("ll"), 0), last("o"), text("next")),
			0, []string{"9:p", "1:hello", "1:next"}, 0},
		{"empty fragments", join(frag(OpBinary, ""), last("")), 0, []string{"2:"}, 0},
		{"pong and close", join(clientFrame(finBit|byte(OpPong), []byte("x"), 0), clientFrame(finBit|byte(OpClose), []byte{0x03, 0xe8, 'b', 'y', 'e'}, 0)),
			0, []string{"a:x", "8:\x03\xe8bye"}, 0},
		{"control frame of 125 bytes", clientFrame(finBit|byte(OpPing), bytes.Repeat([]byte("p"), 125), 0), 0, []string{"9:" + string(bytes.Repeat([]byte("p"), 125))}, 0},
		{"at the limit", text("12345"), 5, []string{"1:12345"}, 0},

		{"unmasked", []byte{finBit | byte(OpText), 1, 'a'}, 0, nil, CloseProtocolError},
		{"reserved bit", clientFrame(finBit|0x40|byte(OpText), []byte("a"), 0), 0, nil, CloseProtocolError},
		{"reserved data opcode", clientFrame(finBit|0x3, []byte("a"), 0), 0, nil, CloseProtocolError},
		{"reserved control opcode", clientFrame(finBit|0xB, []byte("a"), 0), 0, nil, CloseProtocolError},
		{"control frame too long", clientFrame(finBit|byte(OpPing), bytes.Repeat([]byte("p"), 126), 0), 0, nil, CloseProtocolError},
		{"fragmented control frame", clientFrame(byte(OpPing), []byte("p"), 0), 0, nil, CloseProtocolError},
		{"continuation without a message", join(text("ok"), last("x")), 0, []string{"1:ok"}, CloseProtocolError},
		{"new message inside a fragmented one", join(frag(OpText, "a"), text("b")), 0, nil, CloseProtocolError},
		{"length with the high bit", append([]byte{finBit | byte(OpText), maskBit | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, 1, 2, 3, 4), 0, nil, CloseProtocolError},
		{"frame over the limit, known from its header", text("123456")[:2], 5, nil, CloseMessageTooBig},
		{"fragments over the limit", join(frag(OpText, "123"), last("456")), 5, nil, CloseMessageTooBig},
		{"a violation ends the reader", join(clientFrame(finBit|0x3, nil, 0), text("after")), 0, nil, CloseProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, byte by byte, and in pieces of 7 bytes: the same.
			for _, step := range []int{0, 1, 7} {
				got, err := read(tc.in, step, tc.max)
				assert.Equal(t, tc.want, got, "step %d", step)
				if tc.code == 0 {
					require.NoError(t, err, "step %d", step)
					continue
				}
				var e *Error
				require.True(t, errors.As(err, &e), "step %d: %v", step, err)
				assert.Equal(t, tc.code, e.Code, "step %d: %v", step, err)
			}
		})
	}
}

// A Reader holds no bytes between frames, and a partial frame's bytes only
// until it is whole.
func TestReaderHoldsOnlyPartialFrames(t *testing.T) {
	var r Reader
	in := join(text("one"), text("two"))
	r.Feed(in[:len(in)-2])
	m, ok, err := r.Next()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "one", string(m.Payload))
	_, ok, err = r.Next()
	require.NoError(t, err)
	require.False(t, ok)
	assert.True(t, r.own, "the partial frame was copied")
	assert.Len(t, r.in, len(text("two"))-2)
	r.Feed(in[len(in)-2:])
	m, ok, err = r.Next()
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "two", string(m.Payload))
	_, ok, _ = r.Next()
	require.False(t, ok)
	assert.Nil(t, r.in, "nothing held once the frame was read")
}

func TestParseClose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		code    uint16
		reason  string
		errCode uint16
	}{
		{"no code", nil, CloseNoStatus, "", 0},
		{"normal", []byte{0x03, 0xe8}, 1000, "", 0},
		{"with a reason", append([]byte{0x0f, 0xa1}, "bye"...), 4001, "bye", 0},
		{"one byte", []byte{0x03}, 0, "", CloseProtocolError},
		{"1005 may not be sent", []byte{0x03, 0xed}, 0, "", CloseProtocolError},
		{"1006 may not be sent", []byte{0x03, 0xee}, 0, "", CloseProtocolError},
		{"1004 reserved", []byte{0x03, 0xec}, 0, "", CloseProtocolError},
		{"1014 the last the protocol defines", []byte{0x03, 0xf6}, 1014, "", 0},
		{"1015 may not be sent", []byte{0x03, 0xf7}, 0, "", CloseProtocolError},
		{"999", []byte{0x03, 0xe7}, 0, "", CloseProtocolError},
		{"unassigned 2000", []byte{0x07, 0xd0}, 0, "", CloseProtocolError},
		{"2999", []byte{0x0b, 0xb7}, 0, "", CloseProtocolError},
		{"3000, a library's", []byte{0x0b, 0xb8}, 3000, "", 0},
		{"4999, an application's", []byte{0x13, 0x87}, 4999, "", 0},
		{"5000", []byte{0x13, 0x88}, 0, "", CloseProtocolError},
		{"reason not UTF-8", []byte{0x03, 0xe8, 0xff}, 0, "", CloseInvalidPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason, err := ParseClose(tc.payload)
			if tc.errCode != 0 {
				var e *Error
				require.True(t, errors.As(err, &e), "%v", err)
				assert.Equal(t, tc.errCode, e.Code)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.code, code)
			assert.Equal(t, tc.reason, reason)
		})
	}
}

func TestAppendClose(t *testing.T) {
	assert.Equal(t, []byte{0x88, 0x05, 0x0f, 0xa1, 'b', 'y', 'e'}, AppendClose(nil, 4001, "bye"))
	assert.Equal(t, []byte{0x88, 0x00}, AppendClose(nil, CloseNoStatus, "ignored"))
	long := AppendClose(nil, 1000, string(bytes.Repeat([]byte("r"), 200)))
	assert.Len(t, long, 2+MaxControlPayload, "cut to what a control frame holds")
	assert.Equal(t, []byte{0x89, 0x01, 'p'}, AppendControl(nil, OpPing, []byte("p")))
}

// FuzzReader: any bytes, in any pieces, give the same messages and the
// same end as the same bytes all at once, and never a panic.
// FuzzReader feeds any bytes to a Reader, whole and in pieces, and
// checks what must hold of whatever it accepts: the same messages either
// way, and messages that a client could have sent, that say no more than
// the bytes held, and that read back the same once encoded again. Seeds
// are real client frames (testdata/fuzz/FuzzReader) and those below.
func FuzzReader(f *testing.F) {
	f.Add(text(`{"op":"subscribe","channel":"group:G"}`), 3, int64(0))
	f.Add(join(frag(OpText, "he"), clientFrame(finBit|byte(OpPing), []byte("p"), 0), last("llo")), 1, int64(4))
	f.Add(clientFrame(finBit|byte(OpClose), []byte{0x03, 0xe8}, 0), 2, int64(0))
	f.Add(clientFrame(finBit|byte(OpText), []byte("wide"), 8), 5, int64(100))
	f.Add([]byte{finBit | byte(OpText), 1, 'a'}, 1, int64(0))
	f.Add(append([]byte{finBit | byte(OpText), maskBit | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1, 2, 3, 4), 4, int64(0))
	f.Fuzz(func(t *testing.T, in []byte, step int, max int64) {
		if step <= 0 || step > len(in) {
			step = 1
		}
		want, wantErr := readMessages(in, 0, max)
		got, err := readMessages(in, step, max)
		require.Equal(t, want, got, "whole and in pieces")
		require.Equal(t, wantErr, err)
		var e *Error
		if err != nil {
			require.ErrorAs(t, err, &e, "a violation has its close code")
			require.Contains(t, []int{CloseProtocolError, CloseMessageTooBig}, int(e.Code))
		}
		held := 0
		for _, m := range got {
			held += 6 + len(m.Payload) // a header and a mask key at least
			switch m.Op {
			case OpText, OpBinary:
				if max > 0 {
					require.LessOrEqual(t, int64(len(m.Payload)), max, "a message within MaxMessage")
				}
			case OpClose, OpPing, OpPong:
				require.LessOrEqual(t, len(m.Payload), MaxControlPayload)
			default:
				t.Fatalf("a message with opcode %#x", byte(m.Op))
			}
		}
		require.LessOrEqual(t, held, len(in), "no more than the bytes fed")

		// Encoded again, a data message in two fragments and with the
		// other length encodings, the messages read back the same.
		var again []byte
		for i, m := range got {
			wide := []int{0, 2, 8}[i%3]
			if m.Op.control() || len(m.Payload) < 2 {
				again = append(again, clientFrame(finBit|byte(m.Op), m.Payload, wide)...)
				continue
			}
			half := len(m.Payload) / 2
			again = append(again, clientFrame(byte(m.Op), m.Payload[:half], wide)...)
			again = append(again, clientFrame(finBit|byte(OpContinuation), m.Payload[half:], 0)...)
		}
		back, err := readMessages(again, step, max)
		require.NoError(t, err)
		require.Equal(t, got, back, "read back the same")
	})
}

// BenchmarkReader measures the parse of the frames a client sends: a
// subscribe in one read, and a larger message fed in three pieces.
func BenchmarkReader(b *testing.B) {
	small := text(`{"op":"subscribe","channel":"group:@TGS#2J4SZEAEL","id":1}`)
	large := text(string(bytes.Repeat([]byte(`{"op":"ping","pad":"xxxxxxxxxx"}`), 100)))
	for _, tc := range []struct {
		name  string
		frame []byte
		step  int
	}{{"subscribe", small, len(small)}, {"3KB-in-pieces", large, len(large)/3 + 1}} {
		b.Run(tc.name, func(b *testing.B) {
			in := make([]byte, len(tc.frame))
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			var r Reader
			for b.Loop() {
				copy(in, tc.frame) // the Reader unmasks in place
				for p := in; len(p) > 0; {
					n := min(tc.step, len(p))
					r.Feed(p[:n])
					p = p[n:]
					for {
						_, ok, err := r.Next()
						if err != nil {
							b.Fatal(err)
						}
						if !ok {
							break
						}
					}
				}
			}
		})
	}
}
