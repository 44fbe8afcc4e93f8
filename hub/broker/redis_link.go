package broker

import "time"

// linkPhase is the stage a subscription connection is at in coming back
// to life, or that it is live.
type linkPhase uint8

const (
	// linkDown: the connection is lost, or not made yet. Its channels are
	// to be sent again; go-redis dials on that call.
	linkDown linkPhase = iota
	// linkResubscribing: every channel's SUBSCRIBE went out on the new
	// connection, then a PING. Redis answers in order, so the PONG says
	// every channel is subscribed again; until it comes, nothing is sent
	// again.
	linkResubscribing
	// linkRefusedForNow: as linkResubscribing, but the server refused
	// part of the batch because it does not serve yet (loading its data
	// set, rejoining its cluster). The rest of the batch's answers are
	// read; then it is all sent again, once, after a backoff.
	linkRefusedForNow
	// linkUp: every channel is subscribed and publications flow.
	linkUp
)

var linkPhaseNames = [...]string{"down", "resubscribing", "refused for now", "up"}

func (p linkPhase) String() string { return linkPhaseNames[p] }

// subLink is where a subscription connection stands, as its receive loop
// sees it. Each method is one transition, named after what happened, or
// a question about what a read's outcome means in the current phase; none
// does I/O, and the time is the caller's. Only receive's goroutine uses
// it.
type subLink struct {
	phase linkPhase
	// pinged: a PING is out, health or the batch's, and nothing has come
	// since.
	pinged bool
	// quiet is when the connection last showed life, or was last pinged.
	quiet time.Time
	// serving: the node served reads when last asked. While it does not,
	// reads wait only servingPoll, and the node is asked again.
	serving bool
	// askedServing is when the node was last asked whether it serves.
	askedServing time.Time
	// beenUp: the connection was up before. A first connection has
	// nothing to repair (unless it was made for channels moved to it).
	beenUp  bool
	backoff time.Duration // the wait before the next redial
	times   resume
}

// resume times the steps of bringing a lost connection back, for the log:
// where the seconds of an outage go.
type resume struct {
	lost     time.Time // the loss was noticed
	redialed time.Time // the connection was made again and the channels sent
	attempts int       // redials tried
	restored time.Time // the PONG after the channels: all of them confirmed
	channels int
}

// newSubLink is the state of a connection not made yet.
func newSubLink() subLink { return subLink{phase: linkDown, serving: true} }

// lost: the connection failed, at now. It reports whether that is news,
// to be logged: the connection was up.
func (l *subLink) lost(now time.Time) (wasUp bool) {
	wasUp = l.phase == linkUp
	if wasUp {
		l.times = resume{lost: now}
	}
	l.phase, l.pinged = linkDown, false
	return wasUp
}

// redialing: the batch is about to go out on a connection go-redis dials
// for it.
func (l *subLink) redialing() { l.times.attempts++ }

// backOff: a redial failed, or the connection was lost. It returns how
// long to wait before the next one, longer each time until restored.
func (l *subLink) backOff() time.Duration {
	l.backoff = nextBackoff(l.backoff)
	return l.backoff
}

// resubscribed: every channel's SUBSCRIBE and then a PING went out, at
// now, channels of them.
func (l *subLink) resubscribed(now time.Time, channels int) {
	l.phase, l.pinged, l.quiet = linkResubscribing, true, now
	l.times.redialed, l.times.channels = now, channels
}

// refusedForNow: the server answered a command of the batch that it does
// not serve yet. Once up, such an answer changes nothing.
func (l *subLink) refusedForNow() {
	if l.phase == linkResubscribing {
		l.phase = linkRefusedForNow
	}
}

// batchAgain: the refused batch has been answered, or its answers have
// stopped coming. It is sent again after the wait returned; the
// connection is not lost, only not restored yet.
func (l *subLink) batchAgain() time.Duration {
	l.phase, l.pinged = linkDown, false
	return l.backOff()
}

// heard: something came, at now: the connection is alive.
func (l *subLink) heard(now time.Time) { l.pinged, l.quiet = false, now }

// pingSent: a health PING went out, at now.
func (l *subLink) pingSent(now time.Time) { l.pinged, l.quiet = true, now }

// restored: the batch's PONG came, at now: every channel is subscribed
// again. It reports whether the connection was up before, so that
// publications were missed meanwhile and the restoration is to be logged.
func (l *subLink) restored(now time.Time) (again bool) {
	again = l.beenUp
	l.phase, l.beenUp, l.backoff = linkUp, true, 0
	l.times.restored = now
	return again
}

// servingAnswered: the node said whether it serves reads.
func (l *subLink) servingAnswered(serves bool) { l.serving = serves }

// servingCheckDue reports whether the node is to be asked, at now,
// whether it serves again: while it does not, and the connection is up,
// every servingPoll.
func (l *subLink) servingCheckDue(now time.Time) bool {
	if l.serving || l.phase != linkUp || now.Sub(l.askedServing) < servingPoll {
		return false
	}
	l.askedServing = now
	return true
}

// readWait is how long the next read waits for something to come.
func (l *subLink) readWait(pingInterval time.Duration) time.Duration {
	if !l.serving || l.phase == linkRefusedForNow {
		return servingPoll
	}
	return pingInterval
}

// pongMeaning is what the PONG of a health PING says.
type pongMeaning uint8

const (
	pongAlive      pongMeaning = iota // the connection is alive, no more
	pongRestored                      // the batch is through: restored
	pongBatchAgain                    // the refused batch is through: send it again
)

// healthPong is what a health PONG means now. Redis answers in order, so
// the first after the batch's SUBSCRIBEs answers them all.
func (l *subLink) healthPong() pongMeaning {
	switch l.phase {
	case linkResubscribing:
		return pongRestored
	case linkRefusedForNow:
		return pongBatchAgain
	}
	return pongAlive
}

// silence is what a read that timed out means.
type silence uint8

const (
	silenceShort      silence = iota // quiet for less than a ping interval: read on
	silencePingDue                   // quiet for a ping interval: prove the connection alive
	silenceUnanswered                // the PING went unanswered: the connection is dead
	silenceBatchDone                 // the refused batch's answers have stopped: send it again
)

// timedOut is what a read that timed out at now means.
func (l *subLink) timedOut(now time.Time, pingInterval time.Duration) silence {
	switch {
	case l.phase == linkRefusedForNow:
		// Its PING may have been refused too, as while loading.
		return silenceBatchDone
	case now.Sub(l.quiet) < pingInterval:
		return silenceShort
	case !l.pinged:
		return silencePingDue
	}
	return silenceUnanswered
}
