package broker

import (
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// replayAfter decides what a client that last saw since gets, given the
// channel's latest position and the publications history holds (oldest
// first, contiguous): every publication after since if history reaches
// back to it and the stream still holds since (its Tag agrees), else
// nothing and false.
func replayAfter(since, latest Position, held []Publication) ([]Publication, bool) {
	if since.Epoch == "" && since.Offset == 0 {
		since.Epoch = latest.Epoch // from the start of the current epoch
	}
	switch {
	case since.Epoch != latest.Epoch, since.Offset > latest.Offset:
		// Another stream, or one that has not reached since: whatever the
		// client saw there, this stream does not hold it (a failover that
		// lost writes, a restored backup).
		return nil, false
	case since.Offset == latest.Offset:
		return nil, agree(since.Tag, latest.Tag)
	}
	first := latest.Offset + 1 // oldest held offset
	if len(held) > 0 {
		first = held[0].Offset
	}
	if first > since.Offset+1 {
		return nil, false
	}
	if since.Offset > 0 && !agree(since.Tag, tagAt(held, since.Offset)) {
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

// tagAt is the Tag of the publication at off among held (oldest first,
// contiguous), or of the one before the oldest as the oldest names it;
// "" when not known.
func tagAt(held []Publication, off uint64) string {
	if len(held) == 0 {
		return ""
	}
	first := held[0].Offset
	switch {
	case off+1 == first:
		return held[0].Prev
	case off >= first && off-first < uint64(len(held)) && held[off-first].Offset == off:
		return held[off-first].Tag
	}
	for _, p := range held { // not contiguous after all
		if p.Offset == off {
			return p.Tag
		}
	}
	return ""
}

// agree reports whether two Tags may name the same publication: they are
// equal, or one is not known.
func agree(a, b string) bool { return a == "" || b == "" || a == b }

// Follows reports whether next is the publication that comes right after
// prev in a channel: the next offset of prev's epoch, whose predecessor's
// Tag (link, as in Publication.Prev) is prev's, or, when prev is the
// position of a channel that had no stream, the first publication of the
// stream that started after it.
func Follows(prev, next Position, link string) bool {
	if next.Epoch == prev.Epoch {
		return next.Offset == prev.Offset+1 && agree(link, prev.Tag)
	}
	return prev.Empty() && next.Offset == 1
}

// Holds reports whether the stream h was read from holds p: p is Latest,
// or a publication h gave, or the one right before the first of them,
// the same event at the same offset as far as Tags tell. A repair that
// read history once for several subscriptions, from the oldest of their
// positions, asks it of each of the others.
func (h History) Holds(p Position) bool {
	if p.Epoch != h.Latest.Epoch || p.Offset > h.Latest.Offset {
		return false
	}
	if p.Offset == h.Latest.Offset {
		return agree(p.Tag, h.Latest.Tag)
	}
	if len(h.Publications) == 0 || p.Offset+1 < h.Publications[0].Offset {
		return false
	}
	return agree(p.Tag, tagAt(h.Publications, p.Offset))
}

// NextTag is the Tag of the publication of message id that follows the
// position whose Tag is prev ("" for the first of a stream): the first 12
// hex digits of SHA-1 over prev, a space and id. publish.lua computes the
// same, so that a message published again after a failover gets the same
// Tag at the same offset when nothing else came in between.
func NextTag(prev, id string) string {
	h := sha1.New()
	h.Write([]byte(prev))
	h.Write([]byte{' '})
	h.Write([]byte(id))
	var sum [sha1.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))[:tagLen]
}

// tagLen is the length of a Tag: 48 bits, so that a rewritten stream
// repeats an earlier Tag by chance once in 2^48 positions.
const tagLen = 12

// validTag reports whether s can be a Tag as a client gives it back.
func validTag(s string) bool {
	if s == "" || len(s) > 2*tagLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
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
