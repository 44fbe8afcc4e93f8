//go:build unix

package hub

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// On Unix a TCP socket is waited on for readability, with no buffer held
// (see wait), not inside a read.
func TestTCPSocketIsWaitedOn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := ln.Accept()
	require.NoError(t, err)
	defer server.Close()
	ws := &wsConn{Conn: server, raw: server, timeout: 5 * time.Second}
	c := newPlainConn(ws, server, nil, 1<<16, func() bool { return true })
	require.NotNil(t, c.rc)
	require.NotNil(t, c.readable)
}
