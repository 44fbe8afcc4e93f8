package hub_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// A resubscribe whose history read fails while a repair of the channel is
// in flight: the subscription is not left holding its events for ever.
func TestRepairAndFailedResubscribe(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c := e.connect(e.token(groups("G")))
	subscribe(t, c, "group:G", 1)
	e.publish("1400000000", "group:G") // 1
	assert.Equal(t, 1, eventN(t, c.Read()))
	e.gate.closed.Store(true)
	e.publish("1400000000", "group:G") // 2, missed
	e.gate.closed.Store(false)

	e.broker.historyDelay.Store(int64(300 * time.Millisecond))
	e.hub.HandleReconnect() // a worker takes G and reads history, slowly
	time.Sleep(50 * time.Millisecond)
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "id": 2})
	time.Sleep(50 * time.Millisecond)
	e.broker.historyFail.Store(true) // the resubscribe's read fails
	for {
		f, err := c.TryRead(5 * time.Second)
		require.NoError(t, err)
		if f.Op == "error" || f.Op == "subscribed" {
			break
		}
	}
	time.Sleep(500 * time.Millisecond)
	e.broker.historyFail.Store(false)
	e.broker.historyDelay.Store(0)
	e.publish("1400000000", "group:G") // 3
	e.publish("1400000000", "group:G") // 4
	var got []int
	for len(got) < 3 {
		f, err := c.TryRead(5 * time.Second)
		require.NoError(t, err, "the subscription is stuck after %v", got)
		if f.Op == "event" {
			got = append(got, eventN(t, f))
		}
	}
	assert.Equal(t, []int{2, 3, 4}, got)
}

// slowAnswer answers History(since=nil) late: the state is read first, the
// answer arrives after delay.
type slowAnswer struct {
	*broker.Memory
	delay atomic.Int64
}

func (b *slowAnswer) History(ctx context.Context, app, ch string, since *broker.Position) (broker.History, error) {
	h, err := b.Memory.History(ctx, app, ch, since)
	if since == nil {
		time.Sleep(time.Duration(b.delay.Load()))
	}
	return h, err
}

// A repair that runs while a subscribe is joining does not drop what the
// subscribe holds back.
func TestRepairDuringJoin(t *testing.T) {
	v, err := auth.New(t.Context(), auth.Config{Secret: secret, Apps: []string{"1400000000"}})
	require.NoError(t, err)
	b := &slowAnswer{Memory: broker.NewMemory(broker.Config{HistorySize: 100, HistoryTTL: time.Minute})}
	h := hub.New(hub.Config{Node: "n", Metrics: hub.NewMetrics(prometheus.NewRegistry()), Logger: slog.New(slog.DiscardHandler)}, b, v)
	srv := hubtest.Serve(t, h, b, h)
	ctx := context.Background()
	e := &env{t: t}
	// Dialled after Serve, its cleanup (closing the client) runs before the
	// drain's, which then does not wait on a close handshake.
	c := wstest.Dial(t, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", e.token(groups("G")))
	c.ReadOp("connected")
	c.ReadOp("subscribed")

	b.delay.Store(int64(400 * time.Millisecond))
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G", "id": 1})
	time.Sleep(100 * time.Millisecond) // joined; its history is read, the answer on its way
	_, err = b.Publish(ctx, broker.Message{App: "1400000000", ID: "1", Channels: []string{"group:G"}, Data: []byte(`{"n":1}`)})
	require.NoError(t, err)
	time.Sleep(50 * time.Millisecond) // event 1 is held back
	h.HandleReconnect()
	c.ReadOp("subscribed")
	f, err := c.TryRead(5 * time.Second)
	require.NoError(t, err, "event 1 never arrives")
	assert.Equal(t, 1, eventN(t, f))
}

// While history cannot be read, repairs back off instead of hammering the
// broker, and they succeed once it can.
func TestRepairBacksOff(t *testing.T) {
	e := newEnv(t, hub.Config{})
	var conns []*wstest.Conn
	for i := range 50 {
		c := e.connect(e.token(groups("G"), user(string(rune('a'+i%26))+string(rune('a'+i/26)))))
		subscribe(t, c, "group:G", 1)
		conns = append(conns, c)
	}
	e.broker.historyFail.Store(true)
	e.gate.closed.Store(true)
	e.publish("1400000000", "group:G") // 1, missed
	e.gate.closed.Store(false)
	e.publish("1400000000", "group:G") // 2: every subscription sees the gap
	time.Sleep(2 * time.Second)
	failed := testutil.ToFloat64(e.metric("imhub_ws_gap_repairs_total", "outcome", "failed"))
	assert.Less(t, failed, 50.0*8, "about one try per subscription per backoff step, not a busy loop")
	e.broker.historyFail.Store(false)
	for _, c := range conns {
		assert.Equal(t, 1, eventN(t, c.Read()))
		assert.Equal(t, 2, eventN(t, c.Read()))
	}
}
