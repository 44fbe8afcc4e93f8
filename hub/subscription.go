package hub

import "github.com/imhub/imhub/hub/broker"

// subscription is one channel of a session, and where its stream stands.
//
// It is live, joining (a subscribe is reading history) or being repaired
// (a gap is being filled from history). While it joins or is repaired,
// live publications are held back in pending, so that what history gives
// goes first. Its fields are set only by the methods below, one for each
// step; all of them are called with the session's mu held.
type subscription struct {
	channel string
	joining bool // a subscribe is reading history
	// repairing: a repair is wanted or running, and live publications are
	// held back. markedForRepair: the channel's next repair pass is to
	// take this subscription (a delayed retry is wanted but not marked
	// until its time comes).
	repairing, markedForRepair bool
	// gen counts the subscribes of this subscription; a repair begun
	// under an older one gives way.
	gen     uint64
	pending []pendingPub
	// overflow: pending grew past its bound and was dropped; history,
	// read again, stands in for it.
	overflow bool
	fails    int             // repairs failed in a row, for backoff
	sent     broker.Position // position of the last event queued
	// removal is the reason an event held back ends the subscription
	// once it is sent (the IM says the user left the group, or it was
	// disbanded): nothing after it is held. ended: the subscription
	// ended so; nothing more is sent to it.
	removal string
	ended   bool
}

type pendingPub struct {
	frame []byte
	pos   broker.Position
	link  string // the Tag before pos, as the publication names it
	// removes is the reason this publication ends the subscription once
	// sent, if it does.
	removes string
}

// held says whether live publications are held back.
func (sub *subscription) held() bool { return sub.joining || sub.repairing }

// step is where a publication stands against what was sent.
type step uint8

const (
	stepNext step = iota // the one after the last sent: send it
	stepSent             // the last one sent, again
	// stepEarlier: at an offset before the last one sent. It was sent
	// already (by a replay, or from a shard a channel left) if the stream
	// still holds what was sent; if Redis rewrote the stream (a failover
	// that lost writes), it is another event at a reused offset. Only
	// history can tell.
	stepEarlier
	// stepGap: publications are missing before it, its stream started
	// again, or it does not continue what was sent (another event at the
	// offset sent, or after one that was not sent).
	stepGap
)

// follows places pos, whose predecessor's Tag is link, against the last
// position sent.
func (sub *subscription) follows(pos broker.Position, link string) step {
	switch {
	case broker.Follows(sub.sent, pos, link):
		return stepNext
	case pos.Epoch != sub.sent.Epoch:
		return stepGap
	case pos.Offset == sub.sent.Offset && (pos.Tag == "" || sub.sent.Tag == "" || pos.Tag == sub.sent.Tag):
		return stepSent
	case pos.Offset < sub.sent.Offset:
		return stepEarlier
	}
	return stepGap
}

// after says whether pos (whose predecessor's Tag is link) is of the
// stream sent and later than the last sent, or the first of the stream
// that followed an empty channel's position: what a replay of history
// still has to send.
func (sub *subscription) after(pos broker.Position, link string) bool {
	return (pos.Epoch == sub.sent.Epoch && pos.Offset > sub.sent.Offset) || broker.Follows(sub.sent, pos, link)
}

// due says whether a replay of history is to send pos (whose
// predecessor's Tag is link): while the subscription joins, all that
// history gave (the client named where it stands), else what is after the
// last sent.
func (sub *subscription) due(pos broker.Position, link string) bool {
	return sub.joining || sub.after(pos, link)
}

// sentUpTo records pos as the last position sent.
func (sub *subscription) sentUpTo(pos broker.Position) { sub.sent = pos }

// startJoin: a subscribe starts reading history.
func (sub *subscription) startJoin() {
	sub.joining = true
	sub.gen++
}

// joined: the subscribe read history up to latest and sent it. It reports
// whether a repair was asked for while history was read (the broker
// reconnected): one asked for before is answered by this read.
func (sub *subscription) joined(latest broker.Position) (repairAgain bool) {
	sub.sent = latest
	repairAgain = sub.markedForRepair
	sub.joining, sub.repairing, sub.markedForRepair = false, false, false
	return repairAgain
}

// joinFailed: history could not be read and the subscription goes on as it
// was. It reports whether a repair is wanted meanwhile.
func (sub *subscription) joinFailed() (repairWanted bool) {
	sub.joining = false
	return sub.repairing || sub.markedForRepair
}

// wantRepair: a repair is wanted; publications are held back until it is
// done.
func (sub *subscription) wantRepair() { sub.repairing = true }

// markForRepair: the channel's next repair pass takes this subscription.
func (sub *subscription) markForRepair() { sub.markedForRepair = true }

// takeForRepair is the repair pass taking the subscription, if it is
// marked and not joining (a subscribe that ends asks again itself).
func (sub *subscription) takeForRepair() bool {
	if !sub.markedForRepair || sub.joining {
		return false
	}
	sub.markedForRepair = false
	return true
}

// repairFailed counts a failed repair and returns how many failed in a
// row.
func (sub *subscription) repairFailed() int {
	sub.fails++
	return sub.fails
}

// repairRead: history was read for a repair.
func (sub *subscription) repairRead() { sub.fails = 0 }

// repaired: what history gave was sent; held-back publications follow.
func (sub *subscription) repaired() { sub.repairing = false }

// hold keeps a publication back. Past limit, those held are dropped and
// the subscription is marked overflowed: history, read again, stands in
// for them. A publication that ends the subscription (removes, a
// reason) is remembered even then, and nothing after it is held.
func (sub *subscription) hold(frame []byte, pos broker.Position, link string, limit int, removes string) {
	if sub.removal != "" {
		return
	}
	if removes != "" {
		sub.removal = removes
	}
	if sub.overflow {
		return
	}
	if len(sub.pending) >= limit {
		sub.pending, sub.overflow = nil, true
		return
	}
	sub.pending = append(sub.pending, pendingPub{frame, pos, link, removes})
}

// removalLost says whether an event that ends the subscription was held
// back and then lost (the held publications overflowed and history no
// longer had it, or it lay before where history put the subscription):
// nothing is held or being read that could still bring it.
func (sub *subscription) removalLost() bool {
	return sub.removal != "" && !sub.ended && !sub.held() && len(sub.pending) == 0 && !sub.overflow
}

// end: the subscription ended for a removal; nothing more is sent to it.
func (sub *subscription) end() {
	sub.ended, sub.pending, sub.overflow = true, nil, false
}

// takePending takes what was held back, or reports that it overflowed
// (and clears that). fresh says sent was just read from the broker, so
// its epoch is the channel's current one and publications of any other
// are of a stream that is gone: those are left out, unless sent is an
// empty channel's position, which the stream that starts next follows.
func (sub *subscription) takePending(fresh bool) (pending []pendingPub, overflowed bool) {
	if sub.overflow {
		sub.overflow, sub.pending = false, nil
		return nil, true
	}
	pending, sub.pending = sub.pending, nil
	if fresh {
		n := 0
		for _, p := range pending {
			if p.pos.Epoch == sub.sent.Epoch || sub.sent.Empty() {
				pending[n] = p
				n++
			}
		}
		pending = pending[:n]
	}
	return pending, false
}

// coveredByPending says whether a history read that no longer reaches
// back to the last position sent has nothing to add, and nothing was lost:
// the channel's stream is still the one sent from (latest, the position
// history gave, is of its epoch and not behind it), and what is held back
// goes on from the last position sent with no gap. So it is after a node
// resubscribed before the events it missed were published, as when its
// Redis restarts: they come live, and history may have been trimmed of
// them by the time it is read.
func (sub *subscription) coveredByPending(latest broker.Position) bool {
	return latest.Epoch == sub.sent.Epoch && latest.Offset >= sub.sent.Offset && sub.pendingCovers()
}

// pendingCovers says whether what is held back goes on from the last
// position sent with no gap.
func (sub *subscription) pendingCovers() bool {
	if sub.overflow {
		return false
	}
	for _, p := range sub.pending {
		switch sub.follows(p.pos, p.link) {
		case stepSent, stepEarlier:
			continue
		case stepNext:
			return true
		}
		return false
	}
	return false
}

// keepPending puts back what is still held after a gap among them.
func (sub *subscription) keepPending(rest []pendingPub) { sub.pending = rest }
