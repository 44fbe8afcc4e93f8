package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The floor preset runs at a tiny size: every frame arrives, once, of the
// size asked for.
func TestTinyFloorRun(t *testing.T) {
	cfg := defaultConfig()
	withPreset(&cfg, "floor")
	cfg.Conns, cfg.Channels, cfg.Rate, cfg.Duration, cfg.FrameBytes = 40, 4, 40, 1500*time.Millisecond, 300
	var r Result
	runFor(t, cfg, &r)
	assert.Equal(t, targetFloor, r.Target)
	assert.Positive(t, r.Published)
	assert.Zero(t, r.Refused)
	assert.Equal(t, r.Expected, r.Received, "no delivery lost")
	assert.Zero(t, r.Repeats)
	assert.Positive(t, r.P99ms)
	assert.InDelta(t, 300, r.BytesPerDelivery, 0.01, "frames of the size asked for")
}

// floorPair is a floor server in this process with one subscriber to
// channel 0 whose socket's send buffer is small, and that subscriber's
// end.
func floorPair(t *testing.T, s *floorServer) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*net.TCPConn).SetWriteBuffer(4096)
			go s.handle(c)
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	<-accepted
	_ = client.(*net.TCPConn).SetReadBuffer(4096)
	_, err = io.WriteString(client, "sub 0\n")
	require.NoError(t, err)
	line, err := bufio.NewReader(client).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ok\n", line)
	return client
}

// Frames carry the send time and the channel's offset.
func TestFloorFrames(t *testing.T) {
	s := &floorServer{frame: 64, chans: map[uint32]*floorChan{}}
	client := floorPair(t, s)
	var sent [8]byte
	for i := range 3 {
		binary.LittleEndian.PutUint64(sent[:], uint64(1000+i))
		s.publish(0, sent[:])
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for i := range 3 {
		_, err := io.ReadFull(client, buf)
		require.NoError(t, err)
		at, off := floorFrame(buf)
		assert.Equal(t, int64(1000+i), at)
		assert.Equal(t, int64(i+1), off)
		assert.Equal(t, byte('x'), buf[63], "padded")
	}
	assert.Zero(t, s.dropped.Load())
}

// A subscriber whose socket has no room for a frame is dropped, as a hub
// drops a client too slow to keep up, and is not written to again.
func TestFloorDropsFullSubscriber(t *testing.T) {
	s := &floorServer{frame: 1000, chans: map[uint32]*floorChan{}}
	client := floorPair(t, s)
	var sent [8]byte
	// The subscriber never reads: its buffers fill within a few hundred
	// frames.
	for range 2000 {
		s.publish(0, sent[:])
		if s.dropped.Load() > 0 {
			break
		}
	}
	require.Equal(t, int64(1), s.dropped.Load())
	for range 10 {
		s.publish(0, sent[:])
	}
	assert.Equal(t, int64(1), s.dropped.Load(), "a dropped subscriber is not written to again")
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, client)
	assert.NoError(t, err, "the floor closed the connection")
}

// A connection that says neither sub nor pub is closed.
func TestFloorRefusesUnknownRequest(t *testing.T) {
	for _, hello := range []string{"hello\n", "sub x\n", "sub -1\n"} {
		s := &floorServer{frame: 64, chans: map[uint32]*floorChan{}}
		a, b := net.Pipe()
		go s.handle(a)
		_ = b.SetDeadline(time.Now().Add(5 * time.Second))
		_, err := io.WriteString(b, hello)
		require.NoError(t, err)
		_, err = b.Read(make([]byte, 1))
		assert.ErrorIs(t, err, io.EOF, hello)
		b.Close()
	}
}
