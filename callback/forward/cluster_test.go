package forward_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/forward"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/redistest"
)

// TestRedisCluster runs the queue on Redis Cluster: the scripts that move
// an entry between an app's stream, retries and dead letters touch keys of
// one hash tag, so they run in one slot (CROSSSLOT otherwise). Two apps
// whose keys are on different nodes both deliver.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	client, err := broker.NewRedisClient(cl.URL(), "")
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	store := forward.NewRedisStore(client, forward.RedisConfig{Block: 100 * time.Millisecond})
	apps := []string{appA, appB}
	require.NotEqual(t, cl.Owner(store.StreamKey(appA)), cl.Owner(store.StreamKey(appB)),
		"the two apps' queues are on different nodes")

	var failFirst atomic.Bool
	failFirst.Store(true)
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if failFirst.CompareAndSwap(true, false) {
			w.WriteHeader(500)
			return
		}
		answerOK(w, r, n)
	})
	h := newHub(t, fastRetries(forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL}, {App: appB, URL: b.URL}}}),
		store, nil, callback.App{ID: appA}, callback.App{ID: appB})
	h.run(t)
	for i, app := range apps {
		status, body := h.post(t, app, "Group.CallbackAfterSendMsg", groupMsg(i))
		require.Equal(t, 200, status, body)
	}
	eventually(t, 10*time.Second, "deliveries", func() bool {
		return h.count(t, appA, "delivered") == 1 && h.count(t, appB, "delivered") == 1
	})
	assert.Equal(t, 1.0, h.count(t, appA, "retried")+h.count(t, appB, "retried"))

	// Each move of an entry of an app no forwarder works for: retry, back
	// to the stream when due, dead letter, replay.
	const appC = "1400000002"
	ctx := t.Context()
	require.NoError(t, store.Add(ctx, forward.Entry{ID: "c", App: appC, Body: []byte(groupMsg(9)), Accepted: time.Now().UnixMilli()}))
	taken, err := store.Take(ctx, appC, "tool", 1)
	require.NoError(t, err)
	require.Len(t, taken, 1)
	require.NoError(t, store.Retry(ctx, taken[0], time.Now()))
	eventually(t, 5*time.Second, "the due retry taken again", func() bool {
		taken, err = store.Take(ctx, appC, "tool", 1)
		require.NoError(t, err)
		return len(taken) == 1
	})
	require.NoError(t, store.Dead(ctx, taken[0]))
	n, err := store.ReplayDead(ctx, appC, 10, time.Now())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	taken, err = store.Take(ctx, appC, "tool", 1)
	require.NoError(t, err)
	require.Len(t, taken, 1, "a replayed letter is taken again")
	assert.Equal(t, "c", taken[0].ID)
	require.NoError(t, store.Done(ctx, taken[0]))
	backlog, err := store.Backlog(ctx, appC)
	require.NoError(t, err)
	assert.Zero(t, backlog)
}
