package hub_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/wstest"
)

// A text frame that is not valid UTF-8 closes the connection with 1007,
// even when it parses as JSON (encoding/json would quietly turn the bad
// bytes into U+FFFD). The WebSocket library does not check it.
func TestInvalidUTF8Closes(t *testing.T) {
	e := newEnv(t, hub.Config{})
	for _, payload := range []string{
		"{\"op\":\"ping\",\"id\":\"\xff\"}",
		"{\"op\":\"subscribe\",\"channel\":\"group:\xc3\x28\"}",
		"{\"op\":\"ping\",\"id\":\"\xed\xa0\x80\"}", // a UTF-16 surrogate
	} {
		r := rawUpgrade(t, e, "", clientFrame([]byte(payload)))
		for range 2 { // connected, subscribed user:jared
			first, _ := rawFrame(t, r)
			require.Equal(t, byte(0x81), first, "a text frame")
		}
		first, p := rawFrame(t, r)
		require.Equal(t, byte(0x88), first, "a close frame, not an answer: %q", p)
		require.GreaterOrEqual(t, len(p), 2)
		assert.EqualValues(t, hub.CloseInvalidUTF8, binary.BigEndian.Uint16(p), "payload %q", payload)
	}
	assert.Equal(t, 3.0, testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "1007")))
}

// What a client sends is echoed in error frames only clipped: a long op
// name, a group or a channel no channel can be; an id too long to echo is
// refused rather than clipped into another id.
func TestEchoesAreClipped(t *testing.T) {
	e := newEnv(t, hub.Config{})
	c := e.connect(e.token(groups("G")))
	long := strings.Repeat("é", 5000) // 10000 bytes, two per character
	for _, tc := range []struct {
		name  string
		frame map[string]any
		code  string
	}{
		{"op", map[string]any{"op": long, "id": 1}, hub.CodeBadRequest},
		{"group", map[string]any{"op": "subscribe", "channel": "group:" + long[:200], "id": 2}, hub.CodeForbidden},
		{"channel", map[string]any{"op": "subscribe", "channel": "group:" + long, "id": 3}, hub.CodeUnknownChannel},
		{"id", map[string]any{"op": "ping", "id": long}, hub.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(tc.frame)
			f := c.ReadOp("error")
			assert.Equal(t, tc.code, f.Code)
			assert.Less(t, len(f.Raw), 600, "the answer is short: %s", f.Raw)
			assert.True(t, utf8.ValidString(f.Raw), "clipped at a character boundary")
			if tc.name == "id" {
				assert.Empty(t, f.ID, "an id too long is not echoed")
			} else {
				assert.JSONEq(t, fmt.Sprint(tc.frame["id"]), string(f.ID))
			}
		})
	}
	c.Send(map[string]any{"op": "ping", "id": strings.Repeat("x", 62)}) // 64 bytes as JSON
	assert.Equal(t, `"`+strings.Repeat("x", 62)+`"`, string(c.ReadOp("pong").ID), "an id of the longest kind is echoed whole")
}

// readUntilClose reads raw server frames until the close frame, and
// returns the ops of those before it and the close code.
func readUntilClose(t *testing.T, r *bufio.Reader) (ops []wstest.Frame, code int) {
	t.Helper()
	for {
		first, p := rawFrame(t, r)
		if first == 0x88 {
			require.GreaterOrEqual(t, len(p), 2)
			return ops, int(binary.BigEndian.Uint16(p))
		}
		var f wstest.Frame
		require.NoError(t, json.Unmarshal(p, &f))
		f.Raw = string(p)
		ops = append(ops, f)
	}
}

// A client that floods the hub with frames gets a burst's worth answered,
// then rate_limited errors for frames not carried out, then is closed
// with 1008.
func TestFloodIsRateLimited(t *testing.T) {
	e := newEnv(t, hub.Config{ClientRate: 1, ClientBurst: 20})
	var flood []byte
	for i := range 500 {
		flood = append(flood, clientFrame([]byte(fmt.Sprintf(`{"op":"ping","id":%d}`, i)))...)
	}
	r := rawUpgrade(t, e, "", flood)
	frames, code := readUntilClose(t, r)
	assert.Equal(t, int(hub.CloseMalformed), code)
	var pongs, limited int
	for _, f := range frames[2:] { // after connected and subscribed
		switch f.Op {
		case "pong":
			require.Zero(t, limited, "no frame is carried out once the limit is passed: %s", f.Raw)
			pongs++
		case "error":
			require.Equal(t, hub.CodeRateLimited, f.Code, f.Raw)
			assert.JSONEq(t, fmt.Sprint(pongs+limited), string(f.ID), "the refused frame's id")
			limited++
		default:
			t.Fatalf("unexpected frame %s", f.Raw)
		}
	}
	// The bucket refills by one a second: a slow machine may let a few more
	// through, never the flood.
	assert.GreaterOrEqual(t, pongs, 20, "the burst is answered")
	assert.Less(t, pongs, 30)
	assert.GreaterOrEqual(t, limited, 10, "a second's worth is refused before the close (at least 10)")
	assert.Less(t, limited, 30)
	assert.Equal(t, float64(limited+1), testutil.ToFloat64(e.metric("imhub_ws_frames_rate_limited_total")))
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "1008")))
}

// WebSocket pings count against the rate as other frames do: the hub
// answers a burst's worth with pongs, then none, and closes a client that
// goes on with 1008. Unlimited, thousands of pings packed into one packet
// would each have the hub write a pong.
func TestPingFloodIsRateLimited(t *testing.T) {
	e := newEnv(t, hub.Config{ClientRate: 1, ClientBurst: 20})
	var flood []byte
	for range 500 {
		flood = append(flood, 0x89, 0x80, 1, 2, 3, 4) // final ping, masked, no payload
	}
	flood = append(flood, clientFrame([]byte(`{"op":"ping","id":"last"}`))...)
	r := rawUpgrade(t, e, "", flood)
	pongs := 0
	for {
		first, p := rawFrame(t, r)
		if first == 0x88 {
			require.GreaterOrEqual(t, len(p), 2)
			assert.EqualValues(t, hub.CloseMalformed, binary.BigEndian.Uint16(p))
			break
		}
		if first == 0x8a {
			pongs++
			continue
		}
		require.NotContains(t, string(p), `"last"`, "the frame after the flood is carried out: %d pongs before it", pongs)
	}
	// The bucket refills by one a second: a slow machine may let a few more
	// through, never the flood.
	assert.GreaterOrEqual(t, pongs, 20, "the burst is answered")
	assert.Less(t, pongs, 30)
	assert.Equal(t, 1.0, testutil.ToFloat64(e.metric("imhub_ws_closes_total", "code", "1008")))
	assert.Greater(t, testutil.ToFloat64(e.metric("imhub_ws_frames_rate_limited_total")), 10.0)
}

// With the default rate and burst, a client that subscribes to as many
// channels as it may, all at once on connecting, has every one answered.
func TestSubscribeBurstAtConnect(t *testing.T) {
	e := newEnv(t, hub.Config{MaxSubs: 100})
	c := e.connect(e.token(groups("*")))
	// As a reconnecting client does: its own channel again, with since,
	// then the others, and a ping on top.
	c.Send(map[string]any{"op": "subscribe", "channel": "user:jared", "since": "0:x", "id": 99})
	for i := range 99 {
		c.Send(map[string]any{"op": "subscribe", "channel": fmt.Sprintf("group:G%d", i), "id": i})
	}
	c.Send(map[string]any{"op": "ping", "id": "last"})
	assert.JSONEq(t, "99", string(c.ReadOp("subscribed").ID))
	for i := range 99 {
		f := c.ReadOp("subscribed")
		assert.JSONEq(t, fmt.Sprint(i), string(f.ID))
	}
	assert.JSONEq(t, `"last"`, string(c.ReadOp("pong").ID))
	assert.Zero(t, testutil.ToFloat64(e.metric("imhub_ws_frames_rate_limited_total")))
}

// A client that sends steadily below the rate is never refused, however
// long it goes on: the bucket refills as fast as it spends.
func TestSteadyClientIsNeverRefused(t *testing.T) {
	e := newEnv(t, hub.Config{ClientRate: 50, ClientBurst: 2})
	c := e.connect(e.token())
	for i := range 60 { // 25 a second, for 2.4 s: 120 over the burst at the limit
		c.Send(map[string]any{"op": "ping", "id": i})
		f := c.Read()
		require.Equal(t, "pong", f.Op, "frame %d: %s", i, f.Raw)
		time.Sleep(40 * time.Millisecond)
	}
	assert.Zero(t, testutil.ToFloat64(e.metric("imhub_ws_frames_rate_limited_total")))
}

// Clients that ask for replays of large events again and again and read
// none are closed with 4008 once what waits for them passes the byte
// budget, long before the frame bounds would; a client that asks for the
// same and reads it is not.
func TestQueuedBytesAreBounded(t *testing.T) {
	e := newEnv(t, hub.Config{SendQueueBytes: 2 << 20, ClientRate: 1000, ClientBurst: 1000})
	ctx := context.Background()
	big := strings.Repeat("x", 12<<10)
	var first string
	for i := range 100 {
		r, err := e.broker.Publish(ctx, broker.Message{App: "1400000000", ID: fmt.Sprint(i), Channels: []string{"group:G"},
			Data: fmt.Appendf(nil, `{"n":%d,"pad":%q}`, i+1, big)})
		require.NoError(t, err)
		if i == 0 {
			first = r.Positions[0].String()
		}
	}
	replay := map[string]any{"op": "subscribe", "channel": "group:G", "since": first}

	reader := e.connect(e.token(groups("G"), user("reader")))
	for range 40 {
		reader.Send(replay)
		reader.ReadOp("subscribed")
		for want := 2; want <= 100; want++ {
			require.Equal(t, want, eventN(t, reader.Read()))
		}
	}

	// The sinks ask for 30 replays (36 MB) and read nothing meanwhile;
	// then they read what they were sent, up to the close. Loopback socket
	// buffers take some megabytes before the hub's queue grows at all.
	// Without the byte budget, replays were bounded at 4096 frames only:
	// 41 of these, and none of the sinks would have been closed.
	var closed sync.WaitGroup
	for i := range 3 {
		c := e.connect(e.token(groups("G"), user(fmt.Sprint("sink", i))))
		closed.Go(func() {
			b, _ := json.Marshal(replay)
			for range 30 {
				if c.C.Write(ctx, websocket.MessageText, b) != nil {
					break // closed: ExpectClose says how
				}
				// Give the hub the time to queue each replay, as the
				// client's own pace would.
				time.Sleep(10 * time.Millisecond)
			}
			c.ExpectClose(hub.CloseTooSlow)
		})
	}
	closed.Wait()
	reader.Send(map[string]any{"op": "ping", "id": "still"})
	assert.Equal(t, "pong", reader.Read().Op, "the reading client is still served")
}

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
