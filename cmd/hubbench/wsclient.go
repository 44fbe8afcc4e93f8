package main

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
)

// wsClient is the tool's own minimal WebSocket client: text frames in and
// out, pings answered, nothing else. The tool shares the machine with the
// hub it measures, so its receive path must cost as little as can be: a
// general-purpose client spends as much CPU per frame as the hub spends
// sending it.
type wsClient struct {
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

// dialWS opens a WebSocket to ws://host/ws with token as the bearer token.
func dialWS(ctx context.Context, d *net.Dialer, host, token string) (*wsClient, error) {
	return dialWSPath(ctx, d, host, "/ws", token)
}

// dialWSPath opens a WebSocket to ws://host<path>, with token as the
// bearer token unless it is empty.
func dialWSPath(ctx context.Context, d *net.Dialer, host, path, token string) (*wsClient, error) {
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
	c := &wsClient{conn: conn, r: bufio.NewReaderSize(conn, 4096)}
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

const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// write sends one masked frame.
func (c *wsClient) write(op byte, p []byte) error {
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

// next returns the payload of the next text message, valid until the next
// call. Pings are answered on the way; a close frame ends the stream.
func (c *wsClient) next() ([]byte, error) {
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
				if err := c.write(opPong, p); err != nil {
					return nil, err
				}
			case opClose:
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

func (c *wsClient) close() error { return c.conn.Close() }
