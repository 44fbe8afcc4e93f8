package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// slowBody opens a connection to addr and sends a POST to path whose body
// of n bytes will come one byte at a time, far slower than any timeout of
// a test. The headers and the first byte are sent at once.
func slowBody(t *testing.T, addr, path string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", path, n)
	require.NoError(t, err)
	return c
}

// trickle sends one more body byte on each connection every interval
// until stop is closed; a connection the server closed is left alone.
func trickle(conns []net.Conn, interval time.Duration, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		live := append([]net.Conn(nil), conns...)
		for len(live) > 0 {
			select {
			case <-stop:
				return
			case <-time.After(interval):
			}
			kept := live[:0]
			for _, c := range live {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte(" ")); err == nil {
					kept = append(kept, c)
				}
			}
			live = kept
		}
	}()
	return &wg
}

const unsignedCallback = "/im/callback?SdkAppid=100&CallbackCommand=Group.CallbackAfterSendMsg&contenttype=json"

// Request bodies that trickle in are cut off after -read-timeout, also when
// no handler reads them: a callback refused as unsigned (the signature is
// checked before the body is read, so it is refused with 401 though its
// body never completes) and a POST to any other path. Meanwhile the hub
// keeps answering.
func TestBinarySlowBodiesAreCutOff(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100:cbtoken", "-jwt-secret", clusterSecret, "-read-timeout", "2s"})
	const n = 300
	conns := make([]net.Conn, n)
	for i := range conns {
		path := unsignedCallback
		if i%2 == 1 {
			path = "/somewhere/else"
		}
		conns[i] = slowBody(t, p.Addr, path, 100000)
	}
	stop := make(chan struct{})
	wg := trickle(conns, 200*time.Millisecond, stop)
	defer func() { close(stop); wg.Wait() }()

	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(p.URL("/healthz"))
	require.NoError(t, err, "the hub answers while %d slow bodies are open", n)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)

	// Every slow request is answered and its connection closed, although
	// its body is still coming (it would take minutes to complete).
	for i, c := range conns {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err, "connection %d is answered before its body is complete", i)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if i%2 == 0 {
			assert.Equal(t, 401, resp.StatusCode, "the unsigned callback is refused for its signature")
		}
		// Closed: a FIN, or a reset when the server closed with trickled
		// bytes still unread in its socket.
		_, err = r.ReadByte()
		require.True(t, errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET),
			"connection %d is closed, got %v", i, err)
	}

	// The signature is checked before the body's size: an unsigned
	// callback announcing more than -max-body is refused with 401, not 413.
	c := slowBody(t, p.Addr, unsignedCallback, 2<<20)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode)

	// Headers are bounded too.
	req, err := http.NewRequest("GET", p.URL("/healthz"), nil)
	require.NoError(t, err)
	req.Header.Set("X-Pad", strings.Repeat("x", 100<<10))
	resp, err = client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
}

// A WebSocket is not a request body: a session idle for longer than
// -read-timeout lives on.
func TestBinaryWebSocketOutlivesReadTimeout(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-read-timeout", "1s"})
	c := wstest.Dial(t, wsURL(p), mint(t, "100", "idle", false))
	require.Equal(t, "connected", c.Read().Op)
	require.Equal(t, "subscribed", c.Read().Op)
	time.Sleep(2500 * time.Millisecond)
	c.Send(map[string]any{"op": "ping", "id": 1})
	assert.Equal(t, "pong", c.ReadOp("pong").Op)
}

// wsRefusal opens a WebSocket to addr by hand with token, reads the 101
// and the close frame that refuses it, and returns the close code and the
// connection, from which nothing has been read beyond the close frame.
// The connection does not answer the close.
func wsRefusal(addr, token string, header string) (websocket.StatusCode, net.Conn, *bufio.Reader, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = fmt.Fprintf(c, "GET /ws?token=%s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", token, header)
	if err != nil {
		c.Close()
		return 0, nil, nil, err
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		c.Close()
		return 0, nil, nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return 0, nil, nil, fmt.Errorf("upgrade answered %d", resp.StatusCode)
	}
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		c.Close()
		return 0, nil, nil, fmt.Errorf("read close frame: %w", err)
	}
	if h[0] != 0x88 || h[1] < 2 || h[1] > 125 {
		c.Close()
		return 0, nil, nil, fmt.Errorf("not a close frame: % x", h)
	}
	if _, err := r.Discard(int(h[1]) - 2); err != nil {
		c.Close()
		return 0, nil, nil, err
	}
	return websocket.StatusCode(binary.BigEndian.Uint16(h[2:])), c, r, nil
}

// Upgrades without a valid token are refused before they count against
// -max-conns, and at once: the refused connection is dropped without
// waiting for a close handshake the client may never send. So a burst of
// them does not lock out a valid client on a small node.
func TestBinaryBadTokensDoNotLockOut(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-max-conns", "3"})
	const bad = 60
	type refusal struct {
		code websocket.StatusCode
		c    net.Conn
		r    *bufio.Reader
		err  error
	}
	refused := make([]refusal, bad)
	var wg sync.WaitGroup
	for i := range refused {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := "not-a-token"
			if i%2 == 0 {
				tok = ""
			}
			code, c, r, err := wsRefusal(p.Addr, tok, "")
			refused[i] = refusal{code, c, r, err}
		}()
	}
	wg.Wait()
	for _, f := range refused {
		if f.c != nil {
			defer f.c.Close()
		}
	}
	// None of the refused clients has answered its close.
	good := wstest.Dial(t, wsURL(p), mint(t, "100", "jared", false))
	assert.Equal(t, "connected", good.Read().Op, "a valid client is let in past %d refused upgrades", bad)

	for i, f := range refused {
		require.NoError(t, f.err, "upgrade %d", i)
		assert.Equal(t, hub.CloseInvalidToken, f.code, "upgrade %d", i)
		// The hub has closed its side right after the close frame (the
		// library alone would wait 5s for the client's close).
		require.NoError(t, f.c.SetReadDeadline(time.Now().Add(3*time.Second)))
		_, err := f.r.ReadByte()
		assert.ErrorIs(t, err, io.EOF, "upgrade %d: the hub dropped the refused connection", i)
	}
}

// -max-conns-per-ip: the (n+1)th WebSocket from one client address is
// closed with 4009, while another address is let in; behind a trusted
// proxy the address is the one it forwards.
func TestBinaryMaxConnsPerIP(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-max-conns-per-ip", "2", "-trusted-proxies", "127.0.0.1/32"})
	from := func(addr string) http.Header { return http.Header{"X-Forwarded-For": {addr}} }
	dial := func(addr string) *wstest.Conn {
		c, err := wstest.TryDial(t, wsURL(p), mint(t, "100", "u", false), from(addr))
		require.NoError(t, err)
		return c
	}
	first := dial("198.51.100.1")
	require.Equal(t, "connected", first.Read().Op)
	require.Equal(t, "connected", dial("198.51.100.1").Read().Op)
	dial("198.51.100.1").ExpectClose(hub.CloseTooManyConns)
	require.Equal(t, "connected", dial("198.51.100.2").Read().Op, "another address is let in")
	// The refusal is logged, with the address and the count, and no hint:
	// the proxy is trusted. A second within the minute is not: the line
	// is written before the client is closed.
	refusedLines := func(q *hubtest.Process) []map[string]any {
		var out []map[string]any
		for _, l := range q.LogLines() {
			if strings.HasPrefix(fmt.Sprint(l["msg"]), "connections refused: too many from this address") {
				out = append(out, l)
			}
		}
		return out
	}
	lines := refusedLines(p)
	require.Len(t, lines, 1, "%s", p.Stderr())
	assert.Equal(t, "198.51.100.1", lines[0]["addr"])
	assert.EqualValues(t, 1, lines[0]["refused"])
	assert.EqualValues(t, 2, lines[0]["limit"])
	assert.NotContains(t, lines[0], "hint")
	dial("198.51.100.1").ExpectClose(hub.CloseTooManyConns)
	assert.Len(t, refusedLines(p), 1, "once a minute per address")

	// A slot given back is free again.
	require.NoError(t, first.C.Close(websocket.StatusNormalClosure, ""))
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, wsURL(p)+"?token="+mint(t, "100", "u", false), &websocket.DialOptions{HTTPHeader: from("198.51.100.1")})
		if err != nil {
			return false
		}
		defer c.CloseNow()
		_, _, err = c.Read(ctx)
		return err == nil // "connected", not a 4009 close
	}, 10*time.Second, 50*time.Millisecond)

	// Without the proxy trusted, its header is ignored: every connection
	// here comes from 127.0.0.1.
	q := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-max-conns-per-ip", "1"})
	c, err := wstest.TryDial(t, wsURL(q), mint(t, "100", "u", false), from("198.51.100.1"))
	require.NoError(t, err)
	require.Equal(t, "connected", c.Read().Op)
	c, err = wstest.TryDial(t, wsURL(q), mint(t, "100", "u", false), from("198.51.100.2"))
	require.NoError(t, err)
	c.ExpectClose(hub.CloseTooManyConns)
	// That looks like a proxy in front of a hub that trusts none: the
	// line says which flag to set.
	lines = refusedLines(q)
	require.Len(t, lines, 1, "%s", q.Stderr())
	assert.Equal(t, "127.0.0.1", lines[0]["addr"])
	assert.Contains(t, lines[0]["hint"], "-trusted-proxies")
}

// A client that asks for answers and reads none (here, requests pipelined
// on one connection) does not hold the connection for ever: the writing of
// an answer is bounded, and the connection is closed once it times out.
func TestBinaryUnreadAnswersAreCutOff(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-read-timeout", "1s", "-write-timeout", "1s"})
	c, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	defer c.Close()
	// 2000 answers of the dashboard's script, some 24 MB: more than any
	// socket buffers take while nobody reads.
	const n = 2000
	req := []byte(strings.Repeat("GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n", n))
	go func() { _, _ = c.Write(req) }()
	// Longer than the hub gives the writing of an answer: -read-timeout,
	// the time a callback's publish may take, and -write-timeout.
	time.Sleep(10 * time.Second)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	r := bufio.NewReader(c)
	answered := 0
	for ; answered < n; answered++ {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			break
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			break
		}
	}
	assert.Less(t, answered, n, "the connection was closed while its answers waited, not kept open until read")
	code, _ := p.Get("/healthz")
	assert.Equal(t, 200, code)
}
