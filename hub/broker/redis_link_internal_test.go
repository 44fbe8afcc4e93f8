package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The transitions of a subscription connection, each from the state the
// one before left, with what each returned and the phase after it.
func TestSubLinkSteps(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	const ping = time.Second
	// up brings a new link to linkUp, its first connection restored at t0.
	up := func(l *subLink) any {
		l.redialing()
		l.resubscribed(t0, 1)
		return l.restored(t0)
	}
	type step struct {
		do    func(*subLink) any
		want  any
		phase linkPhase
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{
			name: "a first connection is restored by the PONG after its batch, with nothing missed",
			steps: []step{
				{func(l *subLink) any { return l.phase }, linkDown, linkDown},
				{func(l *subLink) any { l.redialing(); l.resubscribed(t0, 3); return l.pinged }, true, linkResubscribing},
				{func(l *subLink) any { l.heard(at(time.Millisecond)); return l.healthPong() }, pongRestored, linkResubscribing},
				{func(l *subLink) any { return l.restored(at(2 * time.Millisecond)) }, false, linkUp},
			},
		},
		{
			name: "a loss is news once, and its restoration is a restoration again",
			steps: []step{
				{up, false, linkUp},
				{func(l *subLink) any { return l.lost(at(time.Second)) }, true, linkDown},
				{func(l *subLink) any { return l.lost(at(2 * time.Second)) }, false, linkDown},
				{func(l *subLink) any { l.redialing(); return l.backOff() > 0 }, true, linkDown},
				{func(l *subLink) any { l.redialing(); l.resubscribed(at(3*time.Second), 2); return l.healthPong() }, pongRestored, linkResubscribing},
				{func(l *subLink) any { return l.restored(at(4 * time.Second)) }, true, linkUp},
				{func(l *subLink) any { return l.times }, resume{lost: at(time.Second), redialed: at(3 * time.Second), attempts: 2, restored: at(4 * time.Second), channels: 2}, linkUp},
				{func(l *subLink) any { return l.backoff }, time.Duration(0), linkUp},
			},
		},
		{
			name: "a loss while resubscribing is not news, and the batch goes out again",
			steps: []step{
				{func(l *subLink) any { l.resubscribed(t0, 1); return l.lost(t0) }, false, linkDown},
				{func(l *subLink) any { return l.pinged }, false, linkDown},
			},
		},
		{
			name: "a batch refused for now is sent again once its PONG comes, the loss untouched",
			steps: []step{
				{up, false, linkUp},
				{func(l *subLink) any { return l.lost(at(time.Second)) }, true, linkDown},
				{func(l *subLink) any { l.resubscribed(at(2*time.Second), 1); l.refusedForNow(); return l.readWait(ping) }, servingPoll, linkRefusedForNow},
				{func(l *subLink) any { l.refusedForNow(); return l.healthPong() }, pongBatchAgain, linkRefusedForNow},
				{func(l *subLink) any { return l.batchAgain() > 0 }, true, linkDown},
				{func(l *subLink) any { l.resubscribed(at(3*time.Second), 1); return l.healthPong() }, pongRestored, linkResubscribing},
				{func(l *subLink) any { l.restored(at(4 * time.Second)); return l.times.lost }, at(time.Second), linkUp},
			},
		},
		{
			name: "a batch refused for now whose answers stop is sent again",
			steps: []step{
				{func(l *subLink) any { l.resubscribed(t0, 1); l.refusedForNow(); return l.timedOut(t0, ping) }, silenceBatchDone, linkRefusedForNow},
				{func(l *subLink) any { return l.batchAgain() > 0 }, true, linkDown},
			},
		},
		{
			name: "a refusal once up changes nothing, nor does a health PONG",
			steps: []step{
				{up, false, linkUp},
				{func(l *subLink) any { l.refusedForNow(); return l.healthPong() }, pongAlive, linkUp},
				{func(l *subLink) any { return l.readWait(ping) }, ping, linkUp},
			},
		},
		{
			name: "silence: read on, then a PING, then the connection is dead unless something comes",
			steps: []step{
				{up, false, linkUp},
				{func(l *subLink) any { l.heard(t0); return l.timedOut(at(ping/2), ping) }, silenceShort, linkUp},
				{func(l *subLink) any { return l.timedOut(at(ping), ping) }, silencePingDue, linkUp},
				{func(l *subLink) any { l.pingSent(at(ping)); return l.timedOut(at(ping+ping/2), ping) }, silenceShort, linkUp},
				{func(l *subLink) any { return l.timedOut(at(2*ping), ping) }, silenceUnanswered, linkUp},
				{func(l *subLink) any { l.heard(at(2 * ping)); return l.timedOut(at(3*ping), ping) }, silencePingDue, linkUp},
			},
		},
		{
			name: "the batch's own PING unanswered for a ping interval is a dead connection",
			steps: []step{
				{func(l *subLink) any { l.resubscribed(t0, 1); return l.timedOut(at(ping), ping) }, silenceUnanswered, linkResubscribing},
				{func(l *subLink) any { l.heard(at(ping)); return l.timedOut(at(2*ping), ping) }, silencePingDue, linkResubscribing},
			},
		},
		{
			name: "a node that does not serve is asked again every servingPoll while up, and reads wait that long",
			steps: []step{
				{up, false, linkUp},
				{func(l *subLink) any { return l.servingCheckDue(t0) }, false, linkUp},
				{func(l *subLink) any { l.servingAnswered(false); return l.readWait(ping) }, servingPoll, linkUp},
				{func(l *subLink) any { return l.servingCheckDue(t0) }, true, linkUp},
				{func(l *subLink) any { return l.servingCheckDue(at(servingPoll / 2)) }, false, linkUp},
				{func(l *subLink) any { return l.servingCheckDue(at(servingPoll)) }, true, linkUp},
				{func(l *subLink) any { l.servingAnswered(true); return l.servingCheckDue(at(time.Minute)) }, false, linkUp},
				{func(l *subLink) any { return l.readWait(ping) }, ping, linkUp},
			},
		},
		{
			name: "a node that does not serve is not asked while the connection is down",
			steps: []step{
				{up, false, linkUp},
				{func(l *subLink) any { l.servingAnswered(false); l.lost(t0); return l.servingCheckDue(t0) }, false, linkDown},
				{func(l *subLink) any { return l.readWait(ping) }, servingPoll, linkDown},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newSubLink()
			for i, st := range tc.steps {
				assert.Equal(t, st.want, st.do(&l), "step %d", i)
				assert.Equal(t, st.phase, l.phase, "the phase after step %d", i)
			}
		})
	}
}

// Each phase names itself.
func TestSubLinkPhaseNames(t *testing.T) {
	for p, want := range map[linkPhase]string{linkDown: "down", linkResubscribing: "resubscribing", linkRefusedForNow: "refused for now", linkUp: "up"} {
		assert.Equal(t, want, p.String())
	}
}
