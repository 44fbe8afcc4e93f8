package main

// The floor (-target floor, -preset floor): what the same deliveries cost
// a bare program that does nothing else. It is hubbench itself, started
// again as a process of its own so that its CPU and memory can be read
// apart from the load tool's. It accepts plain TCP connections on
// loopback: a subscriber sends "sub <channel>\n" and then only reads; a
// publisher sends "pub\n" and then records of 12 bytes (the channel, 4
// bytes, and the send time in unix nanoseconds, 8 bytes, little-endian),
// each acknowledged with one byte once every subscriber's frame is
// written. A frame is prepared once per publication (the send time and
// the channel's offset in its first 16 bytes, then padding to the hub's
// frame size) and written to each subscriber's socket with one write(2):
// no WebSocket, no JSON, no broker, no queue, no goroutine per delivery.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imhub/imhub/internal/childproc"
	"github.com/imhub/imhub/internal/hubload"
)

// floorEnv, set to a frame size, has hubbench serve as the floor.
const floorEnv = "HUBBENCH_FLOOR_FRAME"

// floorHeader is the part of a frame that carries data: the send time and
// the offset.
const floorHeader = 16

// floorMain serves the floor and reports whether it was asked to: a
// process started with floorEnv does nothing else.
func floorMain() bool {
	v := os.Getenv(floorEnv)
	if v == "" {
		return false
	}
	frame, err := strconv.Atoi(v)
	if err == nil && frame < floorHeader {
		err = fmt.Errorf("a frame of %d bytes cannot hold its %d-byte header", frame, floorHeader)
	}
	if err == nil {
		err = serveFloor(frame, os.Stdout)
	}
	fmt.Fprintln(os.Stderr, "hubbench floor: "+err.Error())
	os.Exit(1)
	return true
}

// startFloorServer starts the floor with frames of frame bytes and returns
// its address. It dies with hubbench.
func startFloorServer(ctx context.Context, frame int) (*exec.Cmd, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("find hubbench's own binary: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), floorEnv+"="+strconv.Itoa(frame))
	cmd.Stderr = os.Stderr
	childproc.DieWithParent(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start the floor: %w", err)
	}
	type first struct {
		line string
		err  error
	}
	got := make(chan first, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		got <- first{line, err}
	}()
	select {
	case f := <-got:
		addr, ok := strings.CutPrefix(strings.TrimSpace(f.line), "listening ")
		if f.err != nil || !ok {
			hubload.Stop(cmd)
			return nil, "", fmt.Errorf("the floor did not say where it listens: %q %v", f.line, f.err)
		}
		return cmd, addr, nil
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	hubload.Stop(cmd)
	return nil, "", errors.New("the floor did not start within 10s")
}

// floorServer is the floor's state: each channel's subscribers.
type floorServer struct {
	frame   int
	mu      sync.Mutex
	chans   map[uint32]*floorChan
	dropped atomic.Int64
}

// floorChan is one channel. Its lock is held for a whole publication, so
// that a subscriber's frames are written in the order of their offsets.
type floorChan struct {
	mu     sync.Mutex
	offset uint64
	frame  []byte
	subs   []floorSub
}

type floorSub struct {
	conn net.Conn // held so that the socket stays open
	fd   int      // -1 once a write failed
}

// serveFloor listens on loopback, says where on out, and serves until the
// process is stopped.
func serveFloor(frame int, out io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(out, "listening %s\n", ln.Addr())
	s := &floorServer{frame: frame, chans: map[uint32]*floorChan{}}
	for {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		// A subscriber's goroutine ends once it is subscribed; a
		// publisher's when its connection closes.
		go s.handle(c)
	}
}

func (s *floorServer) channel(id uint32) *floorChan {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.chans[id]
	if ch == nil {
		ch = &floorChan{frame: make([]byte, s.frame)}
		for i := floorHeader; i < len(ch.frame); i++ {
			ch.frame[i] = 'x'
		}
		s.chans[id] = ch
	}
	return ch
}

func (s *floorServer) handle(c net.Conn) {
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	switch kind, arg, _ := strings.Cut(strings.TrimSpace(line), " "); kind {
	case "sub":
		id, err := strconv.ParseUint(arg, 10, 32)
		if err != nil || s.subscribe(c, uint32(id)) != nil {
			c.Close()
		}
	case "pub":
		s.publisher(c, r)
	default:
		c.Close()
	}
}

func (s *floorServer) subscribe(c net.Conn, id uint32) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return errors.New("not TCP")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	if err := raw.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return err
	}
	ch := s.channel(id)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	// The answer goes before any frame: both are written under the lock.
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ok\n")); err != nil {
		return err
	}
	_ = c.SetWriteDeadline(time.Time{})
	ch.subs = append(ch.subs, floorSub{conn: c, fd: fd})
	return nil
}

// publisher reads records and publishes each, until the connection ends.
func (s *floorServer) publisher(c net.Conn, r *bufio.Reader) {
	defer c.Close()
	var rec [12]byte
	ack := []byte{1}
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return
		}
		s.publish(binary.LittleEndian.Uint32(rec[:4]), rec[4:12])
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(ack); err != nil {
			return
		}
	}
}

// publish writes the channel's next frame to each subscriber. The sockets
// are non-blocking (Go's own), so a write never waits and needs no
// deadline: a subscriber whose socket has no room for a whole frame is
// dropped, as a hub drops a client too slow to keep up.
func (s *floorServer) publish(id uint32, sent []byte) {
	ch := s.channel(id)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.offset++
	copy(ch.frame[:8], sent)
	binary.LittleEndian.PutUint64(ch.frame[8:16], ch.offset)
	for i := range ch.subs {
		sub := &ch.subs[i]
		if sub.fd < 0 {
			continue
		}
		if n, err := floorWrite(sub, ch.frame); err != nil || n != len(ch.frame) {
			s.dropped.Add(1)
			sub.fd = -1
			sub.conn.Close()
		}
	}
}

// floorClient is a subscriber of the floor: it reads fixed-size frames.
type floorClient struct {
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

func dialFloor(ctx context.Context, cfg Config, host string, d *net.Dialer, i int) (*floorClient, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	dl, _ := dctx.Deadline()
	_ = conn.SetDeadline(dl)
	c := &floorClient{conn: conn, r: bufio.NewReaderSize(conn, 4096), buf: make([]byte, cfg.frameBytes())}
	if _, err := fmt.Fprintf(conn, "sub %d\n", i%max(cfg.Channels, 1)); err != nil {
		conn.Close()
		return nil, err
	}
	if line, err := c.r.ReadString('\n'); err != nil || line != "ok\n" {
		conn.Close()
		return nil, fmt.Errorf("floor subscribe: %q %v", line, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return c, nil
}

func (c *floorClient) Next() ([]byte, error) {
	if _, err := io.ReadFull(c.r, c.buf); err != nil {
		return nil, err
	}
	return c.buf, nil
}

func (c *floorClient) Close() error   { return c.conn.Close() }
func (c *floorClient) WireBytes() int { return len(c.buf) }

// floorFrame reads a floor frame's send time and offset.
func floorFrame(b []byte) (sent, offset int64) {
	return int64(binary.LittleEndian.Uint64(b[:8])), int64(binary.LittleEndian.Uint64(b[8:16]))
}

// floorPublisher is one sender's connection to the floor.
type floorPublisher struct {
	conn net.Conn
	rec  [12]byte
	ack  [1]byte
}

func dialFloorPublisher(ctx context.Context, host string) (*floorPublisher, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("dial the floor: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "pub\n"); err != nil {
		conn.Close()
		return nil, err
	}
	return &floorPublisher{conn: conn}, nil
}

// publish sends one publication to channel and waits for the floor to
// have written it to every subscriber.
func (p *floorPublisher) publish(channel uint32, sent time.Time) error {
	binary.LittleEndian.PutUint32(p.rec[:4], channel)
	binary.LittleEndian.PutUint64(p.rec[4:], uint64(sent.UnixNano()))
	_ = p.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := p.conn.Write(p.rec[:]); err != nil {
		return err
	}
	_, err := io.ReadFull(p.conn, p.ack[:])
	return err
}
