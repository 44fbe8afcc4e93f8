package hub

import (
	"runtime"
	"sync"
	"unsafe"
	"weak"

	"github.com/imhub/imhub/hub/broker"
)

// replayFrames shares the frames of replayed publications: the frame of
// one publication is encoded once and the same bytes are queued to every
// session that replays it (subscribes with since, gap repairs), as live
// frames are. Ten clients replaying the same history hold one copy of it,
// not ten.
//
// It holds its frames weakly: a frame stays known while some session's
// queue still holds it, and is forgotten once none does, so the cache
// keeps no memory of its own and needs no bound or eviction.
type replayFrames struct {
	mu sync.Mutex
	m  map[frameKey]frameRef
}

// frameKey names a publication: its tag too, as a stream Redis rewrote
// holds another event at an offset that was handed out before.
type frameKey struct {
	app, channel, epoch, tag string
	offset                   uint64
}

// frameRef points weakly at the first byte of a frame of n bytes.
type frameRef struct {
	p weak.Pointer[byte]
	n int
}

// frame returns the frame of p, shared with whoever else holds it.
func (c *replayFrames) frame(p broker.Publication) []byte {
	k := frameKey{p.App, p.Channel, p.Epoch, p.Tag, p.Offset}
	c.mu.Lock()
	if r, ok := c.m[k]; ok {
		if b := r.p.Value(); b != nil {
			c.mu.Unlock()
			return unsafe.Slice(b, r.n)
		}
	}
	c.mu.Unlock()
	f := eventFrame(p) // never empty
	r := frameRef{weak.Make(&f[0]), len(f)}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[frameKey]frameRef)
	}
	c.m[k] = r
	c.mu.Unlock()
	runtime.AddCleanup(&f[0], c.forget, frameGone{k, r.p})
	return f
}

type frameGone struct {
	k frameKey
	p weak.Pointer[byte]
}

// forget drops the entry of a frame no one holds any more, unless it was
// replaced meanwhile.
func (c *replayFrames) forget(g frameGone) {
	c.mu.Lock()
	if c.m[g.k].p == g.p {
		delete(c.m, g.k)
	}
	c.mu.Unlock()
}
