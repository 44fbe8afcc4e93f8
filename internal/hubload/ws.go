package hubload

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imhub/imhub/hub/auth"
)

// WSConn is the load tools' own minimal WebSocket client: text frames in
// and out, pings answered, nothing else. A tool shares the machine with
// the hub it measures, so the receive path must cost as little as can be:
// a general-purpose client spends as much CPU per frame as the hub spends
// sending it. Next is for one reader at a time; Write may be called
// concurrently with it and with itself.
type WSConn struct {
	conn net.Conn
	r    *bufio.Reader
	buf  []byte // the last payload; reused
	// closeCode is the code of the close frame that ended the stream, 0
	// before one came (or when the connection ended without one).
	closeCode int
	// wire is the bytes the last message took on the wire, headers
	// included.
	wire int

	wmu sync.Mutex // writes: subscribe frames, pongs
}

// Token is a hub token for user of app, HS256 with secret, that lets it
// subscribe to every group and expires after ttl; admin lets it take the
// app firehose.
func Token(secret, app, user string, ttl time.Duration, admin bool) string {
	c := auth.Claims{App: app, Groups: []string{"*"}, Admin: admin}
	c.Subject = user
	c.IssuedAt = jwt.NewNumericDate(time.Now())
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	t, _ := auth.Mint([]byte(secret), c)
	return t
}

// DialWS opens a WebSocket to the hub at ws://host/ws with token as the
// bearer token.
func DialWS(ctx context.Context, d *net.Dialer, host, token string) (*WSConn, error) {
	return DialWSPath(ctx, d, host, "/ws", token)
}

// DialWSPath opens a WebSocket to ws://host<path>, with token as the
// bearer token unless it is empty. The handshake is bounded by ctx's
// deadline.
func DialWSPath(ctx context.Context, d *net.Dialer, host, path, token string) (*WSConn, error) {
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	c := &WSConn{conn: conn, r: bufio.NewReaderSize(conn, 4096)}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		conn.Close()
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

// The frame opcodes a client sends.
const (
	OpText  = 0x1
	OpClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// Write sends one masked frame of opcode op.
func (c *WSConn) Write(op byte, p []byte) error {
	f := make([]byte, 0, 14+len(p))
	f = append(f, 0x80|op)
	switch n := len(p); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	f = append(f, mask[:]...)
	for i, b := range p {
		f = append(f, b^mask[i&3])
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(f)
	return err
}

// Next returns the payload of the next text message, valid until the next
// call. Pings are answered on the way; a close frame ends the stream with
// io.EOF, its code kept for CloseCode.
func (c *WSConn) Next() ([]byte, error) {
	c.buf = c.buf[:0]
	c.wire = 0
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[1]&0x80 != 0 {
			return nil, errors.New("masked frame from the server")
		}
		n := uint64(h[1] & 0x7f)
		c.wire += 2
		switch n {
		case 126:
			c.wire += 2
			var b [2]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			c.wire += 8
			var b [8]byte
			if _, err := io.ReadFull(c.r, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 1<<20 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		if op >= 0x8 { // control frames come whole, between fragments
			p := make([]byte, n)
			if _, err := io.ReadFull(c.r, p); err != nil {
				return nil, err
			}
			switch op {
			case opPing:
				if err := c.Write(opPong, p); err != nil {
					return nil, err
				}
			case OpClose:
				if len(p) >= 2 {
					c.closeCode = int(binary.BigEndian.Uint16(p))
				}
				return nil, io.EOF
			}
			continue
		}
		c.wire += int(n)
		start := len(c.buf)
		c.buf = append(c.buf, make([]byte, n)...)
		if _, err := io.ReadFull(c.r, c.buf[start:]); err != nil {
			return nil, err
		}
		if fin {
			return c.buf, nil
		}
	}
}

// CloseCode is the code of the close frame that ended the stream: 0
// before one came, or when the connection ended without one.
func (c *WSConn) CloseCode() int { return c.closeCode }

// WireBytes is the bytes the last message took on the wire, headers
// included.
func (c *WSConn) WireBytes() int { return c.wire }

// SetDeadline sets the connection's read and write deadline.
func (c *WSConn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the connection's read deadline.
func (c *WSConn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// Close closes the connection at once, without a close frame; a Next
// waiting on it returns an error.
func (c *WSConn) Close() error { return c.conn.Close() }

// Number reads the decimal digits at the start of b: a number in a frame
// or a callback, found by the marker before it.
func Number(b []byte) int64 {
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			break
		}
		n = n*10 + int64(d-'0')
	}
	return n
}
