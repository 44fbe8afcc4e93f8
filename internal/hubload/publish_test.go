package hubload

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
)

// The messages alternate between one-to-one and group messages with user
// channels, and each counts the clients subscribed to its channel.
func TestTrafficMessages(t *testing.T) {
	now := time.Unix(1700000000, 5)
	tests := []struct {
		name          string
		users, groups int
		userChannels  bool
		seq           int64
		channel       string
		command       string
		deliveries    int64
	}{
		{"group message", 5, 2, false, 7, "group:G1", "Group.CallbackAfterSendMsg", 2},
		{"group message, users spread", 5, 2, false, 8, "group:G0", "Group.CallbackAfterSendMsg", 3},
		{"even: one-to-one", 5, 2, true, 8, "user:u4", "C2C.CallbackAfterSendMsg", 1},
		{"odd: group", 5, 2, true, 9, "group:G1", "Group.CallbackAfterSendMsg", 2},
		{"no groups: every one one-to-one", 5, 0, true, 9, "user:u4", "C2C.CallbackAfterSendMsg", 1},
		{"no users: every one to a group", 0, 3, true, 8, "group:G2", "Group.CallbackAfterSendMsg", 0},
		{"no groups, no users", 0, 0, false, 8, "group:G0", "Group.CallbackAfterSendMsg", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTraffic(tt.users, tt.groups, tt.userChannels, 100)
			m := tr.Message(tt.seq, now)
			assert.Equal(t, tt.channel, m.Channel)
			assert.Equal(t, tt.channel, tr.Channel(tt.seq), "Channel agrees with Message")
			assert.Equal(t, tt.command, m.Command)
			assert.Equal(t, tt.deliveries, m.Deliveries)
			var body struct {
				MsgSeq  int64
				MsgBody []struct{ MsgContent struct{ Text string } }
			}
			require.NoError(t, json.Unmarshal([]byte(m.Body), &body), m.Body)
			assert.Equal(t, tt.seq, body.MsgSeq)
			require.Len(t, body.MsgBody, 1)
			assert.Equal(t, m.Text, body.MsgBody[0].MsgContent.Text)
			assert.True(t, strings.HasPrefix(m.Text, "t=1700000000000000005 x"), m.Text)
			assert.Len(t, m.Text, 2+19+1+76, "the send time and the padding")
		})
	}
}

// fakeSender accepts every message whose number is odd, as one that
// makes seq%3 deliveries, and ends the run after n messages.
type fakeSender struct {
	n     int64
	sent  atomic.Int64
	stop  context.CancelFunc
	mu    sync.Mutex
	acked map[int64]bool
}

func (f *fakeSender) Send(_ context.Context, seq int64, _ time.Time) (int64, bool) {
	if f.sent.Add(1) == f.n {
		f.stop()
	}
	if seq%2 == 0 {
		return 0, false
	}
	f.mu.Lock()
	f.acked[seq] = true
	f.mu.Unlock()
	return seq % 3, true
}

// A publisher counts what its senders had accepted and refused, tells
// OnAck of each accepted, and ends each sender it made.
func TestPublisherCounts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeSender{n: 500, stop: cancel, acked: map[int64]bool{}}
	var made, ended atomic.Int64
	var mu sync.Mutex
	told := map[int64]bool{}
	p := &Publisher{Rate: 0, Senders: 3,
		NewSender: func(context.Context) (Sender, func()) {
			made.Add(1)
			return f, func() { ended.Add(1) }
		},
		OnAck: func(seq int64, sent time.Time) {
			mu.Lock()
			defer mu.Unlock()
			assert.False(t, sent.IsZero())
			told[seq] = true
		},
	}
	p.Run(ctx)
	assert.EqualValues(t, 3, made.Load(), "a sender for each goroutine")
	assert.EqualValues(t, 3, ended.Load(), "each ended")
	assert.GreaterOrEqual(t, f.sent.Load(), f.n)
	assert.Equal(t, f.sent.Load(), p.Acked.Load()+p.Refused.Load(), "each message counted once")
	assert.EqualValues(t, len(f.acked), p.Acked.Load())
	assert.Equal(t, f.acked, told, "OnAck told of each accepted, and only those")
	var want int64
	for seq := range f.acked {
		want += seq % 3
	}
	assert.Equal(t, want, p.Expected.Load(), "the deliveries of the accepted")
}

// A paced publisher hands out work on its ticks, and stops when its
// context ends.
func TestPublisherPacedStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeSender{n: 3, stop: cancel, acked: map[int64]bool{}}
	p := &Publisher{Rate: 1000, Senders: 1, NewSender: func(context.Context) (Sender, func()) { return f, func() {} }}
	p.Run(ctx)
	assert.GreaterOrEqual(t, f.sent.Load(), int64(3))
	assert.Equal(t, f.sent.Load(), p.Acked.Load()+p.Refused.Load())
}

// HubCallbacks posts each message as the app's signed callback, and only
// the hub's 200 is an acceptance.
func TestHubCallbacks(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	type got struct {
		query map[string]string
		body  string
	}
	posts := make(chan got, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		q := map[string]string{"path": r.URL.Path, "method": r.Method}
		for k := range r.URL.Query() {
			q[k] = r.URL.Query().Get(k)
		}
		posts <- got{q, string(b)}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	client := SenderClient(1)
	defer client.CloseIdleConnections()
	tr := NewTraffic(4, 2, false, 50)
	h := NewHubCallbacks(client, srv.URL, "1400000000", "tok", tr)

	n, ok := h.Send(context.Background(), 11, time.Now())
	assert.True(t, ok)
	assert.EqualValues(t, 2, n, "group:G1's subscribers")
	p := <-posts
	assert.Equal(t, "/im/callback", p.query["path"])
	assert.Equal(t, http.MethodPost, p.query["method"])
	assert.Equal(t, "1400000000", p.query["SdkAppid"])
	assert.Equal(t, "Group.CallbackAfterSendMsg", p.query["CallbackCommand"])
	assert.Equal(t, callback.Sign("tok", p.query["RequestTime"]), p.query["Sign"])
	assert.Contains(t, p.body, `"MsgSeq":11`)

	status.Store(http.StatusServiceUnavailable)
	_, ok = h.Send(context.Background(), 13, time.Now())
	assert.False(t, ok, "refused")
	<-posts

	srv.Close()
	_, ok = h.Send(context.Background(), 15, time.Now())
	assert.False(t, ok, "not reached")
}

// Number reads the digits at the start, and no further.
func TestNumber(t *testing.T) {
	for in, want := range map[string]int64{"123,": 123, "0": 0, "": 0, "x1": 0, "42}": 42, "9876543210": 9876543210} {
		assert.Equal(t, want, Number([]byte(in)), in)
	}
}
