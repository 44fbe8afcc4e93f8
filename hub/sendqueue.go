package hub

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/coder/websocket"
)

// sendQueue is what waits to be written to a session's client: the frames
// queued, the bytes they hold, the replay frames among them, whether a
// writer goroutine is running, and the close asked for, which the writer
// performs after them (see Session.finish).
//
// It has no lock of its own: its fields are guarded by the session's mu,
// and its methods are called with it held. The fan-out queues a
// publication and records it as its subscription's last one sent in one
// step, under that one lock (see Session.deliver).
type sendQueue struct {
	queue [][]byte
	spare [][]byte // the writer's last batch, reused for the next queue
	// queued is the bytes of the frames queued and of the batch being
	// written, for SendQueueBytes.
	queued int
	// burst counts frames of replays and repairs in the queue: bounded by
	// history and sent at the hub's initiative, they do not count against
	// SendQueue. It is cleared when the writer empties the queue.
	burst   int
	writing bool // a writer goroutine is running
	// queuedAt is when the oldest frame of queue was queued, and batchAt
	// that of the batch being written (unix ns; 0: none), kept only with
	// MaxLag: how far behind the client is served.
	queuedAt, batchAt int64
	// closed: the session is to end with code and reason. Nothing is
	// queued after it.
	closed bool
	code   websocket.StatusCode
	reason string
}

// full says whether limit frames wait, besides those of replays.
func (q *sendQueue) full(limit int) bool { return len(q.queue) >= limit+q.burst }

// overBudget says whether more than limit bytes wait.
func (q *sendQueue) overBudget(limit int64) bool { return int64(q.queued) > limit }

// push queues a frame, at (unix ns) now, or 0 where the lag is not kept.
func (q *sendQueue) push(frame []byte, at int64) {
	if len(q.queue) == 0 {
		q.queuedAt = at
	}
	q.queue = append(q.queue, frame)
	q.queued += len(frame)
}

// pushBurst queues a frame of a replay or repair.
func (q *sendQueue) pushBurst(frame []byte, at int64) {
	q.burst++
	q.push(frame, at)
}

// lagging says whether the oldest frame that waits, queued or being
// written, was queued more than limit before now (unix ns).
func (q *sendQueue) lagging(now int64, limit time.Duration) bool {
	oldest := q.batchAt
	if oldest == 0 {
		oldest = q.queuedAt
	}
	return oldest != 0 && now-oldest > int64(limit)
}

// drop empties the queue of a client too slow to take it, and returns how
// many frames it dropped.
func (q *sendQueue) drop() int {
	n := len(q.queue)
	q.queue, q.queuedAt = nil, 0
	return n
}

// requestClose asks for the close with code and reason. The first request
// wins: it reports whether this one was it.
func (q *sendQueue) requestClose(code websocket.StatusCode, reason string) bool {
	if q.closed {
		return false
	}
	q.closed, q.code, q.reason = true, code, reason
	return true
}

// startWriting reports whether a writer is to be started: none was
// running, and one is counted as running from now on.
func (q *sendQueue) startWriting() bool {
	if q.writing {
		return false
	}
	q.writing = true
	return true
}

// next takes the frames queued, for the writer to write. With none, the
// writer is done: nil, and it is counted as stopped.
func (q *sendQueue) next() [][]byte {
	if len(q.queue) == 0 {
		q.writing, q.burst = false, 0
		q.idle()
		return nil
	}
	batch := q.queue
	q.queue = q.spare[:0]
	q.spare = nil
	q.batchAt, q.queuedAt = q.queuedAt, 0
	return batch
}

// written: the writer wrote batch, of n bytes; its array serves the next
// queue.
func (q *sendQueue) written(batch [][]byte, n int) {
	q.queued -= n
	q.spare = batch
	q.batchAt = 0
}

// rest takes what is queued, for the close to write first.
func (q *sendQueue) rest() [][]byte {
	rest := q.queue
	q.queue, q.queuedAt = nil, 0
	return rest
}

// maxIdleQueue is the most frames an idle session's queue keeps room for:
// the room left by a replay of thousands is given back.
const maxIdleQueue = 16

// idle keeps one array for the next frames, not two: the queue and the
// spare swap only while the writer runs.
func (q *sendQueue) idle() {
	if q.spare != nil {
		q.queue, q.spare = q.spare[:0], nil
	}
	if cap(q.queue) > maxIdleQueue {
		q.queue = nil
	}
}

// The session's side of its queue: what may be queued, the close of a
// client too slow for it, and the writer.

// send queues a frame for the writer; false if the session is closed or
// was closed now because its queue is full.
func (s *Session) send(frame []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendLocked(frame)
}

func (s *Session) sendLocked(frame []byte) bool {
	now := s.lagClock()
	switch {
	case s.closed:
		return false
	case s.sendQueue.full(s.hub.cfg.SendQueue):
		return s.tooSlowLocked("client too slow: send queue overflowed")
	case s.closeIfOverBudgetLocked():
		return false
	case now != 0 && s.sendQueue.lagging(now, s.hub.cfg.MaxLag):
		return s.tooSlowLocked("client too slow: its oldest frame waited past the lag allowed")
	}
	s.sendQueue.push(frame, now)
	s.startWriterLocked()
	return true
}

// lagClock is the time (unix ns) frames are queued at with MaxLag, and 0
// without: the clock is read only when the lag is kept.
func (s *Session) lagClock() int64 {
	if s.hub.cfg.MaxLag <= 0 {
		return 0
	}
	return time.Now().UnixNano()
}

// closeIfOverBudgetLocked closes the session as too slow when more than
// SendQueueBytes wait for it, and reports whether it did.
func (s *Session) closeIfOverBudgetLocked() bool {
	if !s.sendQueue.overBudget(s.hub.cfg.SendQueueBytes) {
		return false
	}
	s.tooSlowLocked("client too slow: too many bytes wait for it")
	return true
}

// maxBurst bounds the replay and repair frames a session may have queued
// besides its SendQueue: a client that keeps asking for replays and does
// not read them is too slow all the same.
func (s *Session) maxBurst() int { return max(s.hub.cfg.SendQueue, 4096) }

// sendBurstLocked queues a frame of a replay or repair. The byte budget
// is checked once, when the replay starts, by the caller: a replay is
// sent whole or not at all.
func (s *Session) sendBurstLocked(frame []byte) bool {
	switch {
	case s.closed:
		return false
	case s.burst >= s.maxBurst():
		return s.tooSlowLocked("client too slow: replays not read")
	}
	s.sendQueue.pushBurst(frame, s.lagClock())
	s.startWriterLocked()
	return true
}

// tooSlowLocked closes the session with 4008, dropping what waits for it.
// It returns false, for the sender to return.
func (s *Session) tooSlowLocked(reason string) bool {
	s.hub.m.dropped.Add(float64(s.sendQueue.drop() + 1))
	s.closeLocked(CloseTooSlow, reason)
	return false
}

// startWriterLocked starts the writer goroutine unless it runs. This is
// where it starts: whatever queues the first frame of a backlog, or asks
// for the close, starts it, and it ends once the queue is empty (busy
// counts it, and run waits for it).
func (s *Session) startWriterLocked() {
	if s.sendQueue.startWriting() {
		s.busy.Add(1)
		go s.writeLoop()
	}
}

// writeLoop writes queued frames until the queue is empty, and performs
// the close once one is requested.
func (s *Session) writeLoop() {
	defer s.busy.Done()
	if d := s.hub.cfg.WriteDelay; d > 0 {
		// The first frame of a backlog waits for those that follow it,
		// so that they leave in one write.
		time.Sleep(d)
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.finish()
			return
		}
		batch := s.sendQueue.next()
		s.mu.Unlock()
		if batch == nil {
			return
		}
		n := 0
		for _, f := range batch {
			n += len(f)
		}
		if !s.write(batch) {
			return
		}
		clear(batch) // drop references to frames already written
		s.mu.Lock()
		s.sendQueue.written(batch, n)
		s.mu.Unlock()
	}
}

// write writes frames in as few system calls as the connection's cork
// allows: one for a backlog of small frames. Each socket write is bounded
// by WriteTimeout (see wsConn).
func (s *Session) write(frames [][]byte) bool {
	s.tr.cork()
	for _, f := range frames {
		if err := s.tr.write(f); err != nil {
			_ = s.tr.uncork()
			s.writeFailed(err)
			return false
		}
	}
	if err := s.tr.uncork(); err != nil {
		s.writeFailed(err)
		return false
	}
	return true
}

// writeFailed drops the connection after a write that failed. A write
// that ran out of time is a client that stopped reading before its queue
// filled: as slow as one whose queue did, it is counted as 4008 too.
func (s *Session) writeFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		s.close(CloseTooSlow, "client too slow: a write ran past its deadline")
		_ = s.tr.closeNow()
		return
	}
	s.abort()
}
