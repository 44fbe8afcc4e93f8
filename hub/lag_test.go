package hub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/broker"
)

// With MaxLag, a client that stops reading on a busy channel is closed
// with 4008 once the oldest frame waiting for it is older than that, long
// before its queue's frames or bytes would fill; a client that reads goes
// on getting every event.
func TestMaxLagClosesClientServedLate(t *testing.T) {
	const maxLag = 2 * time.Second
	// Neither the queue's frames nor its bytes, nor the write deadline,
	// close the slow client in this test: only its lag.
	e := newEnv(t, hub.Config{MaxLag: maxLag, SendQueue: 100000, SendQueueBytes: 1 << 40, WriteTimeout: time.Minute})
	fast := e.connect(e.token(groups("G")))
	slow := e.connect(e.token(groups("G"), user("slow")))
	subscribe(t, fast, "group:G", 1)
	subscribe(t, slow, "group:G", 1)
	got := make(chan int, 100000)
	go func() {
		defer close(got)
		for {
			f, err := fast.TryRead(time.Minute)
			if err != nil {
				return
			}
			if f.Op == "event" {
				got <- eventN(t, f)
			}
		}
	}()
	closes := func() float64 { return testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "4008")) }
	big := strings.Repeat("x", 16<<10)
	n := 0
	publish := func() {
		n++
		data := fmt.Sprintf(`{"n":%d,"pad":%q}`, n, big)
		_, err := e.broker.Publish(context.Background(), broker.Message{App: "1400000000", ID: fmt.Sprint(n), Channels: []string{"group:G"}, Data: []byte(data)})
		require.NoError(t, err)
	}
	// Events of 16 KiB fill the slow client's socket buffers; from then on
	// frames wait in its queue, and each event asks how long the oldest
	// has waited. The fast client is kept no more than a few events
	// behind, so that only the slow one lags. Paced, so that the oldest
	// frame ages between events; bounded, so that a hub that never closes
	// it fails rather than queueing without end.
	want := 1
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	for closes() == 0 {
		require.Less(t, n, 3000, "the slow client was not closed for its lag")
		<-pace.C
		publish()
		for n-want > 4 {
			v, ok := <-got
			require.True(t, ok, "the fast client was cut off after %d events", want-1)
			require.Equal(t, want, v, "fast client: in order")
			want++
		}
	}
	slow.ExpectClose(hub.CloseTooSlow)
	publish()
	for want <= n {
		v, ok := <-got
		require.True(t, ok, "the fast client was cut off after %d events", want-1)
		require.Equal(t, want, v)
		want++
	}
	assert.Equal(t, 1.0, closes(), "the fast client stays")
}
