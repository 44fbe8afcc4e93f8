package hub

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/broker"
)

// batchTransport records the frames written between each cork and
// uncork: the batches a writer wrote.
type batchTransport struct {
	mu      sync.Mutex
	open    []string
	batches [][]string
	first   time.Time // when the first batch was written
}

func (b *batchTransport) serve(context.Context, func(websocket.MessageType, []byte) bool) error {
	return nil
}

func (b *batchTransport) write(p []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open = append(b.open, string(p))
	return nil
}

func (b *batchTransport) cork() {}

func (b *batchTransport) uncork() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.open) > 0 {
		if b.batches == nil {
			b.first = time.Now()
		}
		b.batches = append(b.batches, b.open)
		b.open = nil
	}
	return nil
}

func (b *batchTransport) written() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]string(nil), b.batches...)
}

func (b *batchTransport) ping(context.Context) error                 { return nil }
func (b *batchTransport) close(websocket.StatusCode, string) error   { return nil }
func (b *batchTransport) closeNow() error                            { return nil }
func (b *batchTransport) refuse(code websocket.StatusCode, _ string) {}

// With WriteDelay, the first frame of a backlog waits at least that long,
// and the frames queued meanwhile leave with it in one write.
func TestWriteDelayGathersFrames(t *testing.T) {
	const delay = time.Second
	h := New(Config{WriteDelay: delay}, broker.NewMemory(broker.Config{}), nil)
	tr := &batchTransport{}
	s := newSession(h, tr, &auth.Identity{User: "u", App: "1", Expires: time.Now().Add(time.Hour)})
	defer s.stopTimers()
	queued := time.Now()
	for _, f := range []string{"a", "b", "c"} {
		require.True(t, s.send([]byte(f)))
	}
	require.Eventually(t, func() bool { return len(tr.written()) > 0 }, 30*time.Second, 5*time.Millisecond)
	assert.Equal(t, [][]string{{"a", "b", "c"}}, tr.written(), "one write for the three")
	tr.mu.Lock()
	waited := tr.first.Sub(queued)
	tr.mu.Unlock()
	assert.GreaterOrEqual(t, waited, delay, "the first frame waited for the others")
	s.close(closeNormal, "")
	s.busy.Wait()
}
