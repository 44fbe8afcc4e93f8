package hub

import (
	"context"
	"sync"
)

// opQueue lets a session's reader go on reading while one of the client's
// ops waits for the IM (a subscribe or presence of a group whose
// membership is asked, membership.go): the op and every frame that comes
// after it are carried out in order by a goroutine of their own, and the
// reader meanwhile reads on, so that the client's pings are answered and
// the hub's own are not taken for a dead client. The frames wait in a
// bounded queue; a client that fills it is read no further until it
// drains (it sends faster than its ops are carried out).
type opQueue struct {
	mu      sync.Mutex
	room    sync.Cond // signalled as frames are taken
	running bool      // a goroutine carries out ops; frames queue for it
	frames  []queuedFrame
}

// queuedFrame is a client frame waiting, and whether it came too fast.
type queuedFrame struct {
	data    []byte
	refused bool
}

// maxQueuedFrames bounds the frames that wait behind an op: as many as a
// client may send at once and then some.
const maxQueuedFrames = 512

// put queues a frame if ops are being carried out aside, and reports
// whether it did; it waits while the queue is full.
func (q *opQueue) put(data []byte, refused bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.running {
		return false
	}
	if q.room.L == nil {
		q.room.L = &q.mu
	}
	for len(q.frames) >= maxQueuedFrames {
		q.room.Wait()
	}
	// The reader's buffer is its own again once this returns.
	q.frames = append(q.frames, queuedFrame{append([]byte(nil), data...), refused})
	return true
}

// start counts ops as carried out aside from now on.
func (q *opQueue) start() {
	q.mu.Lock()
	q.running = true
	q.mu.Unlock()
}

// next takes the next frame waiting. With none, ops are carried out by
// the reader again: it reports false.
func (q *opQueue) next() (queuedFrame, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) == 0 {
		q.running, q.frames = false, nil
		return queuedFrame{}, false
	}
	f := q.frames[0]
	q.frames[0] = queuedFrame{}
	q.frames = q.frames[1:]
	if q.room.L != nil {
		q.room.Broadcast()
	}
	return f, true
}

// offReader carries out op on a goroutine of the session's (busy counts it),
// then the frames that came meanwhile, in order; the reader returns to
// reading at once. Called on the reader, while no op runs aside.
func (s *Session) offReader(ctx context.Context, op func()) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.busy.Add(1)
	s.mu.Unlock()
	s.ops.start()
	go func() {
		defer s.busy.Done()
		op()
		for {
			f, ok := s.ops.next()
			if !ok {
				return
			}
			s.handle(ctx, f.data, f.refused, true)
		}
	}()
}
