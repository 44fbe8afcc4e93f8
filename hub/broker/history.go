package broker

import (
	"strconv"
	"strings"
	"time"
)

// replayAfter decides what a client that last saw since gets, given the
// channel's latest position and the publications history holds (oldest
// first, contiguous): every publication after since if history reaches
// back to it, else nothing and false.
func replayAfter(since, latest Position, held []Publication) ([]Publication, bool) {
	if since.Epoch == "" && since.Offset == 0 {
		since.Epoch = latest.Epoch // from the start of the current epoch
	}
	switch {
	case since.Epoch != latest.Epoch, since.Offset > latest.Offset:
		return nil, false
	case since.Offset == latest.Offset:
		return nil, true
	}
	first := latest.Offset + 1 // oldest held offset
	if len(held) > 0 {
		first = held[0].Offset
	}
	if first > since.Offset+1 {
		return nil, false
	}
	var out []Publication
	for _, p := range held {
		if p.Offset > since.Offset {
			out = append(out, p)
		}
	}
	return out, true
}

// Follows reports whether next is the publication that comes right after
// prev in a channel: the next offset of prev's epoch, or, when prev is the
// position of a channel that had no stream, the first publication of the
// stream that started after it.
func Follows(prev, next Position) bool {
	if next.Epoch == prev.Epoch {
		return next.Offset == prev.Offset+1
	}
	return prev.Empty() && next.Offset == 1
}

// Empty reports whether p is the position of a channel that had no stream
// when it was read.
func (p Position) Empty() bool { return p.Offset == 0 && isEmptyEpoch(p.Epoch) }

// isEmptyEpoch reports whether epoch is one that an empty channel reports:
// stream epochs never contain a '.'.
func isEmptyEpoch(epoch string) bool { return strings.Contains(epoch, ".") }

// streamState is what a broker knows of a channel when it answers History.
type streamState struct {
	latest Position
	held   []Publication // oldest first, contiguous
	// start is when the channel's stream started; zero when it has none
	// (latest is then an empty channel's position) or when not known.
	start time.Time
	// run identifies the broker's data set: it changes when the data set
	// is lost (the in-process broker restarted, Redis lost its data).
	run  string
	now  time.Time
	life time.Duration // the shortest a stream lives after its last publication
}

// replay is replayAfter, for a since that may be an empty channel's
// position. Such a position, read at time T from data set run, says
// "nothing seen as of T". It is continued by the channel's stream from its
// start when that stream is the first to start after T: the data set is
// the same one, and the stream started (or the channel is still empty)
// within life of T, too soon for another stream to have come and gone in
// between.
func (st streamState) replay(since Position) ([]Publication, bool) {
	if run, at, ok := parseEmptyEpoch(since.Epoch); ok {
		began := st.now
		if !isEmptyEpoch(st.latest.Epoch) {
			began = st.start
		}
		if since.Offset != 0 || run != st.run || began.IsZero() || began.Sub(at) > st.life {
			return nil, false
		}
		since = Position{Epoch: st.latest.Epoch}
	}
	return replayAfter(since, st.latest, st.held)
}

// emptyEpoch is the epoch an empty channel reports when read at now from
// data set run: "<run>.<now in unix ms, base 36>".
func emptyEpoch(run string, now time.Time) string {
	return run + "." + strconv.FormatInt(now.UnixMilli(), 36)
}

func parseEmptyEpoch(epoch string) (run string, at time.Time, ok bool) {
	run, ms, ok := strings.Cut(epoch, ".")
	if !ok {
		return "", time.Time{}, false
	}
	n, err := strconv.ParseInt(ms, 36, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return run, time.UnixMilli(n), true
}
