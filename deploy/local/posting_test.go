package local

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// posting posts a group message through the load balancer every 20 ms, to
// each of its groups in turn, each post waiting for its answer (so that a
// channel's posts are published in order, and fewer go while a post waits
// on a dead hub), and keeps the ones answered OK: the acknowledged events
// a page must end up with.
type posting struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu    sync.Mutex
	acked map[string][]int64 // seqs by channel, "group:<id>"
}

// startPosting starts posting to groups until Stop.
func startPosting(lb, token string, groups ...string) *posting {
	p := &posting{stop: make(chan struct{}), acked: map[string][]int64{}}
	p.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := int64(1); ; seq++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			g := groups[seq%int64(len(groups))]
			if postGroupMessage(lb, token, g, seq) {
				p.mu.Lock()
				p.acked["group:"+g] = append(p.acked["group:"+g], seq)
				p.mu.Unlock()
			}
		}
	})
	return p
}

// Stop ends the posting and waits for the post under way; it may be
// called more than once.
func (p *posting) Stop() {
	p.once.Do(func() { close(p.stop) })
	p.wg.Wait()
}

// missing counts the acknowledged events that got, a page's seqs by
// channel, lacks. A callback published whose answer was lost with its
// hub may be on the page without being acknowledged: that is no fault.
func (p *posting) missing(got map[string][]int64) (n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch, want := range p.acked {
		have := map[int64]bool{}
		for _, seq := range got[ch] {
			have[seq] = true
		}
		for _, seq := range want {
			if !have[seq] {
				n++
			}
		}
	}
	return n
}

// checkOnceInOrder asserts that each channel of got holds each event once
// and in order, and returns how many events were acknowledged.
func (p *posting) checkOnceInOrder(t *testing.T, got map[string][]int64) (acked int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for ch, want := range p.acked {
		seqs := got[ch]
		for i := 1; i < len(seqs); i++ {
			assert.Less(t, seqs[i-1], seqs[i], "%s: each event once, in order: %v", ch, seqs)
		}
		acked += len(want)
	}
	return acked
}

// groupNames is prefix0 … prefix<n-1>.
func groupNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint(prefix, i)
	}
	return names
}
