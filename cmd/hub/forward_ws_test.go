package main

import (
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

// Forwarding does not change what clients get: through a Redis killed
// with SIGKILL and a replica killed with SIGKILL (and started again on its
// spool) while forwards are queued, every callback answered OK reaches the
// app's backend at least once and every client exactly once.
//
// Not in the order answered: what the killed replica still held in its
// spool is published when it is back, after what the other took meanwhile
// (see the README's delivery guarantees).
func TestForwardClientsGetEachEventOnce(t *testing.T) {
	srv := redistest.StartPersistent(t)
	b := newSeqBackend(t, 20*time.Millisecond)
	hub := func() *hubtest.Process {
		return hubtest.Start(t, []string{"-apps", forwardApp, "-jwt-secret", clusterSecret, "-redis", srv.URL(),
			"-spool-dir", t.TempDir(), "-forward", forwardApp + "=" + b.URL + "/cb", "-forward-claim-idle", "2s"})
	}
	doomed, survivor := hub(), hub()
	col := collectWith(t, collectConfig{name: "watcher", app: forwardApp, user: "watcher", groups: []string{"G1"},
		channels: []string{"group:G1"}, urls: []string{wsURL(survivor)}})

	var acked []int
	for seq := 1; seq <= 60; seq++ {
		p := doomed
		switch {
		case seq == 16:
			srv.Stop()
		case seq == 31:
			srv.Restart()
			survivor.WaitReady(200)
			doomed.WaitReady(200)
		case seq == 41:
			doomed.Signal(syscall.SIGKILL)
			doomed.Wait(10 * time.Second)
		}
		if seq > 40 {
			p = survivor
		}
		status, body := post(t, p, forwardApp, seq)
		require.Equal(t, http.StatusOK, status, "seq %d: %s", seq, body)
		acked = append(acked, seq)
	}
	doomed.Restart() // what its spool holds is published once it is back
	waitDelivered(t, b, acked, 60*time.Second)

	var got []int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got = got[:0]
		for _, r := range col.channel("group:G1") {
			got = append(got, r.seq)
		}
		if len(got) >= len(acked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client got %d of %d accepted callbacks: %v (resets %d)", len(got), len(acked), got, col.resetCount())
		}
	}
	time.Sleep(500 * time.Millisecond) // room for a repeat to show
	got = nil
	for _, r := range col.channel("group:G1") {
		got = append(got, r.seq)
	}
	slices.Sort(got)
	assert.Equal(t, acked, got, "each event once")
	assert.Zero(t, col.resetCount(), "no recovered:false")
}
