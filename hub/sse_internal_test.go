package hub

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
)

// An id read back gives the positions written; every change to it is
// refused.
func TestStreamIDRoundTrip(t *testing.T) {
	chans := []string{"group:G1", "user:jared", "app"}
	c := newStreamCursor(chans)
	c.set("group:G1", "12:abc:0f0f")
	c.set("app", "0:e")
	id := c.id()

	back := newStreamCursor([]string{"app", "group:G1", "user:jared"}) // the order does not matter
	require.NoError(t, back.read(id))
	assert.Equal(t, "12:abc:0f0f", back.position("group:G1"))
	assert.Equal(t, "0:e", back.position("app"))
	assert.Equal(t, "", back.position("user:jared"))

	for i := range id {
		for _, r := range []byte("AZaz09-_") {
			if id[i] == r {
				continue
			}
			changed := id[:i] + string(r) + id[i+1:]
			err := newStreamCursor(chans).read(changed)
			// The last character of unpadded base64 may carry bits that
			// decode to nothing: such a change leaves the same bytes.
			if err == nil {
				assert.Equal(t, len(id)-1, i, "a change at %d went unseen", i)
			}
		}
	}
	assert.ErrorIs(t, newStreamCursor([]string{"group:G1"}).read(id), errStreamID, "app is not of this request")
}

// The fuzzer's ids never panic the reader, and one it accepts writes back
// to positions it reads again alike.
func FuzzStreamID(f *testing.F) {
	c := newStreamCursor([]string{"group:G1", "user:jared"})
	f.Add(c.id())
	c.set("group:G1", "3:01ed6d417de01:612b146e864a")
	f.Add(c.id())
	c.set("user:jared", "0:01ed6d417de01")
	f.Add(c.id())
	f.Add("")
	f.Add(strings.Repeat("A", MaxStreamIDLen+1))
	f.Fuzz(func(t *testing.T, id string) {
		c := newStreamCursor([]string{"group:G1", "user:jared"})
		if c.read(id) != nil {
			return
		}
		again := newStreamCursor([]string{"group:G1", "user:jared"})
		require.NoError(t, again.read(c.id()))
		assert.Equal(t, c.positions, again.positions)
	})
}

// An event frame's head is read as eventFrame writes it, channel escapes
// included.
func TestEventHead(t *testing.T) {
	for _, ch := range []string{"group:G1", `group:a"b\c`, "group:✓"} {
		p := eventFrame(broker.Publication{Channel: ch, Position: broker.Position{Offset: 7, Epoch: "e", Tag: "0a"}, Data: []byte(`{"x":1}`)})
		got, off, ok := eventHead(p)
		require.True(t, ok, string(p))
		assert.Equal(t, ch, got)
		assert.Equal(t, "7:e:0a", off)
	}
}

// A frame with line breaks is sent as several data lines, which a client
// joins back with "\n".
func TestAppendData(t *testing.T) {
	assert.Equal(t, "data: {\"a\":1}\n\n", string(appendData(nil, []byte(`{"a":1}`))))
	assert.Equal(t, "data: {\ndata: \"a\":1\ndata: }\n\n", string(appendData(nil, []byte("{\r\n\"a\":1\r}"))))
}

// deadlineRecorder is a response that takes deadlines, as the server's
// does.
type deadlineRecorder struct{ *httptest.ResponseRecorder }

func (deadlineRecorder) SetWriteDeadline(time.Time) error { return nil }
func (deadlineRecorder) SetReadDeadline(time.Time) error  { return nil }

// The fan-out encodes an event once: a WebSocket session and an SSE
// session of the channel are queued the same bytes, and the stream writes
// its message around them, not a copy made anew.
func TestSSESharesTheEncodedFrame(t *testing.T) {
	h := New(Config{SendQueue: 16}, broker.NewMemory(broker.Config{}), nil)
	k := chanKey{"1", "group:G"}
	ch := &hubChannel{subs: map[*Session]*subscription{}, live: true}
	h.shard(k).channels[k] = ch
	rec := deadlineRecorder{httptest.NewRecorder()}
	req := httptest.NewRequest(http.MethodGet, "/sse?channel=group:G", nil)
	sc := newSSEConn(rec, req, newStreamCursor([]string{"group:G"}), time.Second)
	var sessions []*Session
	for i, tr := range []transport{nil, sc} {
		s := newSession(h, tr, &auth.Identity{User: fmt.Sprint(i), App: "1", Expires: time.Now().Add(time.Hour)})
		s.stopTimers()
		s.writing = true // no writer: the frames stay queued to be looked at
		sessions = append(sessions, s)
		ch.subs[s] = &subscription{channel: "group:G", sent: broker.Position{Epoch: "e"}}
	}
	h.HandlePublication(broker.Publication{App: "1", Channel: "group:G", Position: broker.Position{Offset: 1, Epoch: "e"}, Data: []byte(`{"id":"a"}`)})
	ws, stream := sessions[0].queue, sessions[1].queue
	require.Len(t, ws, 1)
	require.Len(t, stream, 1)
	assert.Same(t, &ws[0][0], &stream[0][0], "one encode, its bytes shared")

	sc.cork()
	require.NoError(t, sc.write(stream[0]))
	assert.True(t, bytes.Contains(*sc.buf.p, stream[0]), "the frame is written as it is")
	require.NoError(t, sc.uncork())
	body := rec.Body.String()
	assert.True(t, strings.HasPrefix(body, "retry: "), "the first write opens the stream: %s", body)
	assert.Equal(t, "text/event-stream", rec.Header().Get("Content-Type"))
	assert.Contains(t, body, "\n\nid: ")
	assert.Contains(t, body, "\nevent: event\ndata: "+string(ws[0])+"\n\n")
	assert.True(t, rec.Flushed)
}

// An idle stream keeps no batch buffer: a write gives its buffer back,
// corked or not.
func TestSSEIdleStreamHoldsNoBuffer(t *testing.T) {
	rec := deadlineRecorder{httptest.NewRecorder()}
	req := httptest.NewRequest(http.MethodGet, "/sse?channel=group:G", nil)
	sc := newSSEConn(rec, req, newStreamCursor([]string{"group:G"}), time.Second)
	frame := []byte(`{"op":"subscribed","channel":"group:G","offset":"0:e"}`)
	require.NoError(t, sc.write(frame))
	assert.Nil(t, sc.buf.p, "an uncorked write keeps no buffer")
	sc.cork()
	require.NoError(t, sc.write(frame))
	require.NotNil(t, sc.buf.p, "a corked write gathers")
	require.NoError(t, sc.uncork())
	assert.Nil(t, sc.buf.p, "the batch written, its buffer is given back")
	require.NoError(t, sc.ping(t.Context()))
	assert.Nil(t, sc.buf.p)
	assert.Equal(t, 2, strings.Count(rec.Body.String(), "event: subscribed\n"))
}

// A stream's channel names are its own: not pieces of the request line,
// which holds the credential and would be kept with them.
func TestStreamChannelsAreCopies(t *testing.T) {
	rawQuery := "token=secret-token-of-some-length&channel=group:G&channel=user:u"
	q, err := url.ParseQuery(rawQuery)
	require.NoError(t, err)
	names, msg := streamChannels(q["channel"], MaxStreamChannels)
	require.Empty(t, msg)
	require.Equal(t, []string{"group:G", "user:u"}, names)
	for i, n := range names {
		assert.NotSame(t, unsafe.StringData(q["channel"][i]), unsafe.StringData(n), "%s is copied", n)
	}
	names[0] = "x"
	assert.Equal(t, "group:G", q["channel"][0], "the slice is the stream's own too")
}

// BenchmarkSSEMessage measures what a stream adds to an event the fan-out
// encoded: its message written around the shared frame, the id included.
func BenchmarkSSEMessage(b *testing.B) {
	c := &sseConn{cursor: newStreamCursor([]string{"group:G", "user:u"})}
	c.cursor.set("user:u", "4:01ed6d417de01:612b146e864a")
	frame := eventFrame(broker.Publication{Channel: "group:G", Position: broker.Position{Offset: 1, Epoch: "01ed6d417de01", Tag: "612b146e864a"},
		Data: []byte(`{"id":"eef24da2794b48ef6e38843428b490cd","type":"group.message.sent","app":"1","time":1490686222000,"group_id":"G","body":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"red packet"}}]}`)})
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = c.appendMessage(buf[:0], frame)
	}
}
