package wsframe

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/browsertest"
)

// The seeds of FuzzAgainstGobwas are the bytes real clients wrote to a
// server, captured after the opening handshake: coder/websocket (the Go
// library the hub's own tests and tools dial with), node's WebSocket and
// Chromium's. Each client sends what a session sends (a subscribe, a
// message over 65535 bytes, which takes a 64-bit length, UTF-8 beyond
// ASCII), and coder/websocket also a message in fragments, a ping between
// messages and text and close reasons that are not UTF-8, which it does
// not check; each ends with a close with a code and a reason. The frames
// a server must refuse are these bytes spoiled in one place each.
//
// TestClientSeeds captures them all again and checks that the committed
// seeds are still what the clients send: the same frames, the same
// payloads once unmasked, the mask keys aside (a client draws them at
// random). With IMHUB_WRITE_SEEDS=1 it writes them instead.

// seedsEnv, set to 1, has TestClientSeeds write the seeds anew.
const seedsEnv = "IMHUB_WRITE_SEEDS"

// seedDir is where go test keeps FuzzAgainstGobwas's corpus.
var seedDir = filepath.Join("testdata", "fuzz", "FuzzAgainstGobwas")

// seed is one input of FuzzAgainstGobwas.
type seed struct {
	name string
	in   []byte
	step int   // the pieces the Reader is fed in (0: whole)
	max  int64 // Reader.MaxMessage
	// What the hub makes of it: the close code of the violation that ends
	// the read (0: none), and the code of the client's last close frame
	// as ParseClose reads it, or the code it answers a bad one with (0:
	// no close frame read).
	code, closeCode uint16
}

// bigPayload is a message a little over 65535 bytes, JSON as the hub's
// clients send, so that its frame's length takes 64 bits.
var bigPayload = `{"op":"publish","data":"` + strings.Repeat("x", 1<<16) + `"}`

func TestClientSeeds(t *testing.T) {
	srv := newCaptureServer(t)
	seeds := captureCoder(t, srv)
	seeds = append(seeds, captureNode(t, srv)...)
	seeds = append(seeds, captureChromium(t, srv)...)

	for _, s := range seeds {
		v := hubRead(t, s.in, s.step, s.max)
		var closeCode uint16
		for _, m := range v.msgs {
			if m.Op == OpClose {
				var e *Error
				code, _, err := ParseClose(m.Payload)
				if errors.As(err, &e) {
					code = e.Code
				}
				closeCode = code
			}
		}
		require.Equal(t, [2]uint16{s.code, s.closeCode}, [2]uint16{v.code, closeCode}, "%s: the close code of the violation, the close frame's code", s.name)
	}

	if os.Getenv(seedsEnv) == "1" {
		require.NoError(t, os.MkdirAll(seedDir, 0o755))
		for _, s := range seeds {
			require.NoError(t, os.WriteFile(filepath.Join(seedDir, s.name), encodeSeed(s), 0o644))
		}
		t.Logf("wrote %d seeds to %s", len(seeds), seedDir)
		return
	}
	for _, s := range seeds {
		t.Run(s.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(seedDir, s.name))
			require.NoError(t, err, "a seed is missing: %s=1 go test -run TestClientSeeds ./hub/wsframe/ writes them", seedsEnv)
			committed, err := decodeSeed(b)
			require.NoError(t, err)
			require.Equal(t, s.step, committed.step, "the seed's pieces")
			require.Equal(t, s.max, committed.max, "the seed's MaxMessage")
			require.Equal(t, frameShapes(t, s.in), frameShapes(t, committed.in),
				"the client sends other frames now: %s=1 go test -run TestClientSeeds ./hub/wsframe/ writes them anew; check that the difference is the client's", seedsEnv)
		})
	}
}

// captureServer answers WebSocket handshakes without extensions and
// records the bytes each client then sends, answering pings and the
// client's close as a server does, so that the client goes through its
// whole session. It serves the page Chromium runs at /.
type captureServer struct {
	*httptest.Server
	captures chan capture
}

// capture is what one client sent after the handshake, or why it was cut.
type capture struct {
	in  []byte
	err error
}

func newCaptureServer(t *testing.T) *captureServer {
	s := &captureServer{captures: make(chan capture, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>seeds</title><script>%s</script>", clientScript("'ws://' + location.host + '/ws'", "document.title = 'done'"))
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		in, err := s.record(w, r)
		s.captures <- capture{in, err}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// next waits for the next client's capture.
func (s *captureServer) next(t *testing.T, who string) []byte {
	t.Helper()
	select {
	case c := <-s.captures:
		require.NoError(t, c.err, "capture what %s sent", who)
		return c.in
	case <-time.After(time.Minute):
		t.Fatalf("%s sent nothing the capture server saw in a minute", who)
		return nil
	}
}

// record completes the handshake and reads until the client's close frame,
// answering it, or until the client breaks the protocol (which none of
// the clients here does but in a close reason) or goes away.
func (s *captureServer) record(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "a WebSocket handshake only", http.StatusBadRequest)
		return nil, errors.New("not a WebSocket handshake")
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("hijack: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Minute))
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if _, err := fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:])); err != nil {
		return nil, fmt.Errorf("answer the handshake: %w", err)
	}
	var (
		in     []byte
		frames Reader
		buf    = make([]byte, 32<<10)
	)
	for {
		n, err := rw.Read(buf)
		in = append(in, buf[:n]...)
		frames.Feed(bytes.Clone(buf[:n])) // the Reader unmasks in place
		if done, err := s.answer(conn, &frames); done || err != nil {
			return in, err
		}
		if err != nil {
			return in, fmt.Errorf("read before the client's close frame: %w", err)
		}
	}
}

// answer handles the frames fed: it answers pings, and the client's close
// frame or a violation with a close frame, and then says the capture is
// done.
func (s *captureServer) answer(conn net.Conn, frames *Reader) (done bool, err error) {
	for {
		m, ok, err := frames.Next()
		var e *Error
		switch {
		case errors.As(err, &e):
			_, _ = conn.Write(AppendClose(nil, e.Code, ""))
			return true, nil
		case !ok:
			return false, nil
		case m.Op == OpPing:
			if _, err := conn.Write(AppendControl(nil, OpPong, m.Payload)); err != nil {
				return false, fmt.Errorf("answer a ping: %w", err)
			}
		case m.Op == OpClose:
			code, _, err := ParseClose(m.Payload)
			if errors.As(err, &e) {
				code = e.Code
			}
			_, _ = conn.Write(AppendClose(nil, code, ""))
			return true, nil
		}
	}
}

// clientScript is the session of the browser's and node's WebSocket, in
// JavaScript: url is an expression, done a statement run once closed.
func clientScript(url, done string) string {
	return `const ws = new WebSocket(` + url + `);
ws.binaryType = 'arraybuffer';
ws.onopen = () => {
  ws.send('{"op":"subscribe","channel":"group:@TGS#2J4SZEAEL","id":1}');
  ws.send(new TextEncoder().encode(` + strconv.Quote(bigPayload) + `));
  ws.send('{"op":"publish","data":"caf\u00e9 \u2713 \ud83d\ude00"}');
  ws.close(4000, 'bye: all sent');
};
ws.onclose = () => { ` + done + ` };
ws.onerror = (e) => { console.error('websocket error', e.message || e); };
`
}

// captureCoder runs coder/websocket's client through its sessions and
// returns its seeds, and those spoiled from them.
func captureCoder(t *testing.T, srv *captureServer) []seed {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	session := func(name string, run func(c *websocket.Conn) error) []byte {
		c, _, err := websocket.Dial(ctx, url, nil)
		require.NoError(t, err, "%s: dial", name)
		defer c.CloseNow()
		c.SetReadLimit(-1)
		c.CloseRead(ctx) // reads the pongs and the server's close
		require.NoError(t, run(c), name)
		return srv.next(t, "coder/websocket, "+name)
	}
	main := session("session", func(c *websocket.Conn) error {
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"op":"subscribe","channel":"group:@TGS#2J4SZEAEL","id":1}`)); err != nil {
			return err
		}
		// A Writer writes a frame per Write: three fragments, the last
		// one empty.
		w, err := c.Writer(ctx, websocket.MessageText)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, `{"op":"history","channel":"group:G",`); err != nil {
			return err
		}
		if _, err := io.WriteString(w, `"since":41,"id":2}`); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := c.Ping(ctx); err != nil {
			return err
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(bigPayload)); err != nil {
			return err
		}
		return c.Close(4000, "bye: all sent")
	})
	badText := session("bad-utf8-text", func(c *websocket.Conn) error {
		if err := c.Write(ctx, websocket.MessageText, []byte("{\"op\":\"ping\",\"id\":\"\xc3\x28\"}")); err != nil {
			return err
		}
		return c.Close(websocket.StatusNormalClosure, "")
	})
	// Close fails: the server answers 1007, not the client's code.
	badClose := session("bad-utf8-close", func(c *websocket.Conn) error {
		_ = c.Close(4001, "bye \xff")
		return nil
	})
	restart := session("close-1012", func(c *websocket.Conn) error {
		return c.Close(websocket.StatusServiceRestart, "restarting")
	})

	frames := splitFrames(t, main)
	require.Len(t, frames, 7, "coder/websocket's session: text, three fragments, ping, text, close")
	require.Equal(t, finBit|byte(OpPing), frames[4].first, "the fifth frame is the ping")
	require.Len(t, frames[5].payload(), len(bigPayload), "the sixth frame is the large message")
	// Spoiled, frame i of the session is f's instead, and the message
	// over 65535 bytes is left out: the fuzzer mutates short inputs
	// faster, and the seeds above have it.
	spoil := func(i int, f func(rawFrame) []byte) []byte {
		var b []byte
		for j, fr := range frames {
			switch {
			case j == 5:
			case j == i:
				b = append(b, f(fr)...)
			default:
				b = append(b, fr.bytes...)
			}
		}
		return b
	}
	return []seed{
		{"coder-session", main, 0, 0, 0, 4000},
		{"coder-session-in-pieces", main, 1000, 0, 0, 4000},
		{"coder-session-over-limit", main, 0, 1 << 16, CloseMessageTooBig, 0},
		{"coder-bad-utf8-text", badText, 0, 0, CloseInvalidPayload, 0},
		{"coder-bad-utf8-close", badClose, 0, 0, 0, CloseInvalidPayload},
		{"coder-close-1012", restart, 0, 0, 0, 1012},
		{"coder-rsv1", spoil(0, func(f rawFrame) []byte { return f.with(f.first|0x40, f.payload()) }), 0, 0, CloseProtocolError, 0},
		{"coder-reserved-data-opcode", spoil(0, func(f rawFrame) []byte { return f.with(f.first&^0x0f|0x3, f.payload()) }), 0, 0, CloseProtocolError, 0},
		{"coder-reserved-control-opcode", spoil(4, func(f rawFrame) []byte { return f.with(f.first&^0x0f|0xb, f.payload()) }), 0, 0, CloseProtocolError, 0},
		{"coder-unmasked", spoil(0, func(f rawFrame) []byte { return f.unmasked() }), 0, 0, CloseProtocolError, 0},
		{"coder-ping-fragmented", spoil(4, func(f rawFrame) []byte { return f.with(f.first&^finBit, f.payload()) }), 0, 0, CloseProtocolError, 0},
		{"coder-ping-126-bytes", spoil(4, func(f rawFrame) []byte {
			return f.with(f.first, bytes.Repeat(f.payload(), MaxControlPayload+1)[:MaxControlPayload+1])
		}), 0, 0, CloseProtocolError, 0},
		{"coder-continuation-first", spoil(1, func(rawFrame) []byte { return nil }), 0, 0, CloseProtocolError, 0},
		{"coder-new-message-inside-fragments", spoil(2, func(f rawFrame) []byte { return f.with(finBit|byte(OpText), f.payload()) }), 0, 0, CloseProtocolError, 0},
	}
}

// captureNode runs node's WebSocket through a session.
func captureNode(t *testing.T, srv *captureServer) []seed {
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed, so its client's frames cannot be captured: run `make deps` or `apt-get install -y nodejs`")
	}
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	script := clientScript("process.argv[1]", "process.exit(0)")
	// Node 22 has WebSocket; Node 20 behind a flag (see the Makefile).
	args := []string{"-e", script, url}
	if exec.Command("node", "--experimental-websocket", "-e", "0").Run() == nil {
		args = append([]string{"--experimental-websocket"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	in := srv.next(t, "node")
	require.NoError(t, cmd.Wait(), "node: %s", out.String())
	return []seed{
		{"node-session", in, 0, 0, 0, 4000},
		{"node-session-in-pieces", in, 3, 0, 0, 4000},
	}
}

// captureChromium has headless Chromium open the capture server's page.
func captureChromium(t *testing.T, srv *captureServer) []seed {
	ctx := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")), "Chromium: open the page")
	in := srv.next(t, "Chromium")
	return []seed{
		{"chromium-session", in, 0, 0, 0, 4000},
		{"chromium-session-over-limit", in, 0, int64(len(bigPayload) - 1), CloseMessageTooBig, 0},
	}
}

// rawFrame is one frame of a capture, as the client wrote it.
type rawFrame struct {
	bytes  []byte
	first  byte
	masked bool
	key    [4]byte
	body   []byte // as sent: masked when masked
}

// payload is the frame's payload unmasked.
func (f rawFrame) payload() []byte {
	p := bytes.Clone(f.body)
	if f.masked {
		for i := range p {
			p[i] ^= f.key[i&3]
		}
	}
	return p
}

// with encodes the frame again with first byte first and payload, masked
// with the client's key.
func (f rawFrame) with(first byte, payload []byte) []byte {
	b := []byte{first}
	switch n := len(payload); {
	case n >= 1<<16:
		b = binary.BigEndian.AppendUint64(append(b, maskBit|127), uint64(n))
	case n > MaxControlPayload:
		b = binary.BigEndian.AppendUint16(append(b, maskBit|126), uint16(n))
	default:
		b = append(b, maskBit|byte(n))
	}
	b = append(b, f.key[:]...)
	for i, c := range payload {
		b = append(b, c^f.key[i&3])
	}
	return b
}

// unmasked encodes the frame again without its mask.
func (f rawFrame) unmasked() []byte {
	b := f.with(f.first, f.payload())
	hl := len(b) - len(f.body) - 4
	b[1] &^= maskBit
	return append(b[:hl:hl], f.payload()...)
}

// splitFrames cuts a capture, or a seed made from one, into its frames.
func splitFrames(t *testing.T, in []byte) []rawFrame {
	t.Helper()
	var frames []rawFrame
	for b := in; len(b) > 0; {
		require.GreaterOrEqual(t, len(b), 2, "a frame's header cut at %d", len(in)-len(b))
		f := rawFrame{first: b[0], masked: b[1]&maskBit != 0}
		n, hl := uint64(b[1]&0x7f), 2
		switch n {
		case 126:
			require.GreaterOrEqual(t, len(b), 4)
			n, hl = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			require.GreaterOrEqual(t, len(b), 10)
			n, hl = binary.BigEndian.Uint64(b[2:]), 10
		}
		if f.masked {
			require.GreaterOrEqual(t, len(b), hl+4)
			copy(f.key[:], b[hl:])
			hl += 4
		}
		require.LessOrEqual(t, n, uint64(len(b)-hl), "a frame's payload cut at %d", len(in)-len(b))
		f.bytes, f.body = b[:hl+int(n)], b[hl:hl+int(n)]
		frames = append(frames, f)
		b = b[hl+int(n):]
	}
	return frames
}

// frameShapes describes each frame but for its mask key: the first byte,
// whether it is masked, how its length is encoded, the payload unmasked.
func frameShapes(t *testing.T, in []byte) []string {
	var shapes []string
	for _, f := range splitFrames(t, in) {
		shapes = append(shapes, fmt.Sprintf("%#02x masked=%t length=%#02x %d %q", f.first, f.masked, f.bytes[1]&0x7f, len(f.body), f.payload()))
	}
	return shapes
}

// encodeSeed writes s in go test's corpus format for FuzzAgainstGobwas's
// arguments.
func encodeSeed(s seed) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\nint(%d)\nint64(%d)\n", s.in, s.step, s.max)
}

// decodeSeed reads a seed encodeSeed wrote.
func decodeSeed(b []byte) (seed, error) {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 || lines[0] != "go test fuzz v1" {
		return seed{}, fmt.Errorf("not a seed of FuzzAgainstGobwas: %d lines", len(lines))
	}
	var s seed
	in, ok := strings.CutPrefix(lines[1], "[]byte(")
	if !ok {
		return seed{}, fmt.Errorf("the first argument is not []byte: %.40s", lines[1])
	}
	q, err := strconv.Unquote(strings.TrimSuffix(in, ")"))
	if err != nil {
		return seed{}, fmt.Errorf("the first argument: %w", err)
	}
	s.in = []byte(q)
	if _, err := fmt.Sscanf(lines[2], "int(%d)", &s.step); err != nil {
		return seed{}, fmt.Errorf("the second argument: %w", err)
	}
	if _, err := fmt.Sscanf(lines[3], "int64(%d)", &s.max); err != nil {
		return seed{}, fmt.Errorf("the third argument: %w", err)
	}
	return s, nil
}
