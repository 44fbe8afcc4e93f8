package hub_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
)

// A channel with no event yet answers an offset that stands for "nothing
// seen": its first event is delivered live, with no repair, and a client
// coming back with that offset gets every event since, recovered.
func TestEmptyChannelOffset(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c := e.connect(e.token(groups("G")))
	first := subscribe(t, c, "group:G", 1)
	e.publish("1400000000", "group:G") // 1
	assert.Equal(t, 1, eventN(t, c.Read()))
	assert.Zero(t, testutil.ToFloat64(e.metric("imhub_ws_gap_repairs_total", "outcome", "recovered")),
		"the first event follows the empty channel's offset")

	again := e.connect(e.token(groups("G"), user("again")))
	e.publish("1400000000", "group:G") // 2
	assert.Equal(t, 2, eventN(t, c.Read()))
	again.Send(map[string]any{"op": "subscribe", "channel": "group:G", "since": first.Offset, "id": 2})
	f := again.ReadOp("subscribed")
	require.NotNil(t, f.Recovered)
	assert.True(t, *f.Recovered)
	assert.Equal(t, 1, eventN(t, again.Read()))
	assert.Equal(t, 2, eventN(t, again.Read()))
}
