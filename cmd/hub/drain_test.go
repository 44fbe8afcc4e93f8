package main

import (
	"encoding/json"
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

// longDrain is a -drain no test waits out: a hub that exits within
// exitWithin of its signal ended its drain early, as it should have.
const (
	longDrain  = "10m"
	exitWithin = time.Minute
)

// devSession connects one session to the -dev hub p.
func devSession(t *testing.T, p *hubtest.Process, sub string) *wstest.Conn {
	t.Helper()
	_, body := p.Get("/dev/token?sub=" + sub)
	var tok struct{ Token string }
	require.NoError(t, json.Unmarshal([]byte(body), &tok))
	c := wstest.Dial(t, wsURL(p), tok.Token)
	require.Equal(t, "connected", c.Read().Op)
	return c
}

// A drain with no session left to close ends there, not at -drain: with
// none at all it ends at once, and when the sessions leave by themselves
// it ends as the last one has, however much of the period is left.
func TestBinaryDrainEndsWithTheLastSession(t *testing.T) {
	t.Run("no sessions", func(t *testing.T) {
		p := hubtest.Start(t, []string{"-dev", "-drain", longDrain})
		p.WaitReady(200)
		p.Signal(syscall.SIGTERM)
		assert.Equal(t, 0, p.Wait(exitWithin), "the drain ended before its -drain of %s", longDrain)
	})
	t.Run("sessions that leave", func(t *testing.T) {
		p := hubtest.Start(t, []string{"-dev", "-drain", longDrain})
		a, b := devSession(t, p, "a"), devSession(t, p, "b")
		p.Signal(syscall.SIGTERM)
		p.WaitReady(503)
		require.False(t, p.Exited(), "two sessions hold the drain")
		require.NoError(t, a.C.Close(websocket.StatusNormalClosure, "leaving"))
		require.False(t, p.Exited(), "one session still holds it")
		require.NoError(t, b.C.Close(websocket.StatusNormalClosure, "leaving"))
		assert.Equal(t, 0, p.Wait(exitWithin), "the drain ended with its last session, before its -drain of %s", longDrain)
	})
}

// Ctrl-C stops a -dev hub at once: its sessions are closed with 1012
// together, not spread over -drain. SIGTERM, what an orchestrator sends,
// still spreads them.
func TestBinaryDevStopsOnInterrupt(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-drain", longDrain})
	a, b := devSession(t, p, "a"), devSession(t, p, "b")
	p.Signal(syscall.SIGINT)
	a.ExpectClose(hub.CloseShuttingDown)
	b.ExpectClose(hub.CloseShuttingDown)
	assert.Equal(t, 0, p.Wait(exitWithin), "a -dev hub does not drain for -drain on Ctrl-C")
	line := p.WaitLog(time.Second, "shutting down", func(l map[string]any) bool { return l["msg"] == "shutting down" })
	assert.EqualValues(t, 0, line["drain"], "in nanoseconds")

	q := hubtest.Start(t, []string{"-dev", "-drain", longDrain})
	devSession(t, q, "a")
	q.Signal(syscall.SIGTERM)
	line = q.WaitLog(exitWithin, "shutting down", func(l map[string]any) bool { return l["msg"] == "shutting down" })
	assert.EqualValues(t, 10*time.Minute, line["drain"], "SIGTERM drains for -drain")
	assert.False(t, q.Exited())
}
