package local

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientTrace is what one client of a rolling restart saw: the sequence
// numbers of its events and, in order with them, every connection,
// subscribed frame, skipped event and reconnect its client logged, so
// that a client that misses an event can be told apart: never sent,
// skipped, or lost across which reconnect to which hub.
type clientTrace struct {
	start time.Time

	mu      sync.Mutex
	seqs    []int64
	offsets map[int64]string // seq -> offset it came at
	notes   []traceNote
}

// traceNote is one line of a trace; seq is set for an event.
type traceNote struct {
	at   time.Duration // since the test started
	seq  int64
	text string
}

func newClientTrace(start time.Time) *clientTrace {
	return &clientTrace{start: start, offsets: map[int64]string{}}
}

// event records an event of sequence number seq, received at offset from
// node.
func (r *clientTrace) event(seq int64, offset, node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seqs = append(r.seqs, seq)
	r.offsets[seq] = offset
	r.notes = append(r.notes, traceNote{time.Since(r.start), seq, fmt.Sprintf("event seq=%d offset=%s node=%s", seq, offset, node)})
}

func (r *clientTrace) note(text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, traceNote{at: time.Since(r.start), text: text})
}

// first returns when the trace first noted a line that begins with
// prefix.
func (r *clientTrace) first(prefix string) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.notes {
		if strings.HasPrefix(n.text, prefix) {
			return n.at, true
		}
	}
	return 0, false
}

func (r *clientTrace) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seqs)
}

func (r *clientTrace) received() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seqs)
}

// missing returns the sequence numbers of want that the client did not
// get.
func (r *clientTrace) missing(want []int64) []int64 {
	got := map[int64]bool{}
	for _, s := range r.received() {
		got[s] = true
	}
	var m []int64
	for _, s := range want {
		if !got[s] {
			m = append(m, s)
		}
	}
	return m
}

// around returns the notes from the last event before seq (of the
// sequence want, in which seq lies) to the first event after it.
func (r *clientTrace) around(seq int64, want []int64) string {
	i := slices.Index(want, seq)
	before, after := int64(-1), int64(-1)
	if i > 0 {
		before = want[i-1]
	}
	if i >= 0 && i+1 < len(want) {
		after = want[i+1]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	from, to := 0, len(r.notes)
	for j, n := range r.notes {
		if n.seq != 0 && n.seq == before {
			from = j
		}
		if n.seq != 0 && n.seq == after {
			to = j + 1
			break
		}
	}
	var b strings.Builder
	for _, n := range r.notes[from:to] {
		fmt.Fprintf(&b, "\t\t%8.3fs %s\n", n.at.Seconds(), n.text)
	}
	return b.String()
}

// logger is a client's logger that writes into the trace, debug lines
// included.
func (r *clientTrace) logger() *slog.Logger { return slog.New(traceHandler{r: r}) }

type traceHandler struct {
	r     *clientTrace
	attrs []slog.Attr
}

func (h traceHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h traceHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.r.note(b.String())
	return nil
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.r, append(slices.Clone(h.attrs), as...)}
}

func (h traceHandler) WithGroup(string) slog.Handler { return h }

// explainMissing logs, for a rolling restart whose clients did not all get
// every acknowledged event of their group (acked, by group; clients i is
// of group i%len(acked)), which events each missed, whether the other
// clients of the group got them (and at which offset), what the first
// few clients saw around each, and the callbacks and restarts around it
// (timeline).
func explainMissing(t *testing.T, acked [][]int64, clients []*clientTrace, timeline []string) {
	t.Helper()
	groups := len(acked)
	const detailed = 3
	shown := 0
	for i, r := range clients {
		g := i % groups
		missed := r.missing(acked[g])
		if len(missed) == 0 {
			continue
		}
		t.Logf("client %d (group G%d) missed %d of %d events: %v", i, g, len(missed), len(acked[g]), missed)
		if shown >= detailed {
			continue
		}
		shown++
		for _, seq := range missed[:min(len(missed), 5)] {
			got, offset := 0, ""
			for j := g; j < len(clients); j += groups {
				clients[j].mu.Lock()
				if o, ok := clients[j].offsets[seq]; ok {
					got++
					offset = o
				}
				clients[j].mu.Unlock()
			}
			t.Logf("\tseq %d: got by %d of the group's %d clients (offset %s); client %d saw around it:\n%s",
				seq, got, (len(clients)-g+groups-1)/groups, offset, i, r.around(seq, acked[g]))
			t.Logf("\tcallbacks and restarts around seq %d:\n\t\t%s", seq, strings.Join(near(timeline, seq), "\n\t\t"))
		}
	}
}

// near returns the lines of timeline from a little before the callback of
// seq to a little after it, restarts included.
func near(timeline []string, seq int64) []string {
	at := -1
	for i, l := range timeline {
		if strings.Contains(l, fmt.Sprintf("callback seq=%d ", seq)) {
			at = i
			break
		}
	}
	if at < 0 {
		return nil
	}
	return timeline[max(at-8, 0):min(at+9, len(timeline))]
}
