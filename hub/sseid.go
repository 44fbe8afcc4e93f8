package hub

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// An SSE stream's message id holds the position of every channel of the
// stream (docs/protocol.md#server-sent-events), so that the browser's own
// reconnect, which sends the last id it saw as Last-Event-ID, resumes each
// channel as a since would on /ws.
//
// Its form, as base64url without padding:
//
//	version (1 byte, 1)
//	per channel with a position:
//	    the first 4 bytes of SHA-256 of the channel's name
//	    the length of the position as a uvarint
//	    the position, as the offset of §3 ("offset:epoch:tag")
//	the first 8 bytes of SHA-256 of all that comes before
//
// Channels are named by a hash rather than by name so that an id stays
// short beside long group ids; the request names the channels, and an id
// is read against them. The checksum finds an id that was cut or changed
// on the way; it is no signature: an id only says where a client stands,
// which the client could say with since anyway.

// MaxStreamIDLen bounds an SSE message id as given in Last-Event-ID or
// since, in characters.
const MaxStreamIDLen = 4096

const (
	streamIDVersion = 1
	streamIDHash    = 4 // bytes of a channel's hash
	streamIDSum     = 8 // bytes of the checksum
)

// errStreamID is wrapped by every reason an id is refused.
var errStreamID = errors.New("stream id refused")

// streamCursor is where an SSE stream stands on each of its channels:
// positions[i] is that of channels[i], "" where none is known yet.
type streamCursor struct {
	channels  []string
	hashes    [][streamIDHash]byte
	positions []string
}

// newStreamCursor makes the cursor of a stream of channels, with no
// position known.
func newStreamCursor(channels []string) *streamCursor {
	c := &streamCursor{
		channels:  channels,
		hashes:    make([][streamIDHash]byte, len(channels)),
		positions: make([]string, len(channels)),
	}
	for i, ch := range channels {
		c.hashes[i] = channelHash(ch)
	}
	return c
}

func channelHash(channel string) (h [streamIDHash]byte) {
	sum := sha256.Sum256([]byte(channel))
	copy(h[:], sum[:])
	return h
}

// set records that the stream stands at position on channel; false for a
// channel not of the stream.
func (c *streamCursor) set(channel, position string) bool {
	for i, ch := range c.channels {
		if ch == channel {
			c.positions[i] = position
			return true
		}
	}
	return false
}

// position is where the stream stands on channel, "" where not known.
func (c *streamCursor) position(channel string) string {
	for i, ch := range c.channels {
		if ch == channel {
			return c.positions[i]
		}
	}
	return ""
}

// appendID appends the cursor's id to b.
func (c *streamCursor) appendID(b []byte) []byte {
	raw := make([]byte, 0, 64)
	raw = append(raw, streamIDVersion)
	for i, p := range c.positions {
		if p == "" {
			continue
		}
		raw = append(raw, c.hashes[i][:]...)
		raw = binary.AppendUvarint(raw, uint64(len(p)))
		raw = append(raw, p...)
	}
	sum := sha256.Sum256(raw)
	raw = append(raw, sum[:streamIDSum]...)
	return base64.RawURLEncoding.AppendEncode(b, raw)
}

// id is the cursor's id.
func (c *streamCursor) id() string { return string(c.appendID(nil)) }

// read sets the cursor's positions from id. An id that is too long, does
// not decode, fails its checksum, or names a channel not of the stream
// (or one twice) is refused, with an error wrapping errStreamID, and the
// cursor is left as it was.
func (c *streamCursor) read(id string) error {
	if len(id) > MaxStreamIDLen {
		return fmt.Errorf("%w: longer than %d characters", errStreamID, MaxStreamIDLen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return fmt.Errorf("%w: not base64url", errStreamID)
	}
	if len(raw) < 1+streamIDSum {
		return fmt.Errorf("%w: too short", errStreamID)
	}
	body, sum := raw[:len(raw)-streamIDSum], raw[len(raw)-streamIDSum:]
	want := sha256.Sum256(body)
	if !bytes.Equal(sum, want[:streamIDSum]) {
		return fmt.Errorf("%w: its checksum does not match: the id was changed or cut", errStreamID)
	}
	if body[0] != streamIDVersion {
		return fmt.Errorf("%w: unknown version %d", errStreamID, body[0])
	}
	positions := make([]string, len(c.channels))
	rest := body[1:]
	for len(rest) > 0 {
		if len(rest) < streamIDHash {
			return fmt.Errorf("%w: a channel is cut short", errStreamID)
		}
		var h [streamIDHash]byte
		copy(h[:], rest)
		rest = rest[streamIDHash:]
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return fmt.Errorf("%w: a position is cut short", errStreamID)
		}
		p := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		i := c.index(h)
		switch {
		case i < 0:
			return fmt.Errorf("%w: it names a channel the request does not", errStreamID)
		case positions[i] != "":
			return fmt.Errorf("%w: it names a channel twice", errStreamID)
		case p == "":
			return fmt.Errorf("%w: an empty position", errStreamID)
		}
		positions[i] = p
	}
	copy(c.positions, positions)
	return nil
}

func (c *streamCursor) index(h [streamIDHash]byte) int {
	for i := range c.hashes {
		if c.hashes[i] == h {
			return i
		}
	}
	return -1
}
