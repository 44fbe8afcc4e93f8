package main

// Per-client latency: how far behind each client is served, not only the
// whole fleet. A server that is fair under overload keeps every client
// near the others; one that is not serves some at once and leaves others
// seconds behind, which the fleet's percentiles hide (the slow clients'
// deliveries are a small share of all of them). Each client records its
// latencies in a small histogram of its own; a step's spread is the
// slowest client's p99 against the median client's.

import (
	"math"
	"math/bits"
	"slices"
	"sync"
)

// clientHist is one client's latencies in microseconds, in buckets of at
// most 1/64 of their value (1.6%): exact below 64 µs, then 32 buckets to
// each power of two, to about 2^27 µs (over two minutes), the last bucket
// taking anything longer. 704 counts of 4 bytes: under 3 KiB a client,
// so that 10,000 clients cost the tool about 28 MiB.
type clientHist struct {
	mu     sync.Mutex
	counts [clientBuckets]uint32
	total  uint32
}

const (
	exactBelow    = 64 // values below are their own bucket
	subBuckets    = 32 // buckets to each power of two above
	clientBuckets = exactBelow + 20*subBuckets
)

// bucketOf is the bucket of a latency of us microseconds.
func bucketOf(us int64) int {
	if us < exactBelow {
		return int(max(us, 0))
	}
	// The top six bits of us say where it lies: e is how far they are
	// shifted, the five below the leading one the bucket within.
	e := bits.Len64(uint64(us)) - 6
	i := exactBelow + (e-1)*subBuckets + int(us>>e) - subBuckets
	return min(i, clientBuckets-1)
}

// bucketValue is what a bucket stands for: the middle of the values in it.
func bucketValue(i int) float64 {
	if i < exactBelow {
		return float64(i)
	}
	e := (i-exactBelow)/subBuckets + 1
	m := (i-exactBelow)%subBuckets + subBuckets
	lo := float64(int64(m) << e)
	return lo + float64(int64(1)<<e-1)/2
}

// record counts one latency of us microseconds.
func (h *clientHist) record(us int64) {
	h.mu.Lock()
	h.counts[bucketOf(us)]++
	h.total++
	h.mu.Unlock()
}

// quantile is the latency, in microseconds, that a share q (0 < q ≤ 1)
// of the client's deliveries took at most, and false without any.
func (h *clientHist) quantile(q float64) (float64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return quantileOf(h.counts[:], h.total, q)
}

// quantileOf is the value of the bucket where the ceil(q × total)-th
// smallest count falls.
func quantileOf(counts []uint32, total uint32, q float64) (float64, bool) {
	if total == 0 {
		return 0, false
	}
	rank := uint32(max(math.Ceil(q*float64(total)), 1))
	var seen uint32
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return bucketValue(i), true
		}
	}
	return bucketValue(len(counts) - 1), true
}

// reset forgets what was recorded.
func (h *clientHist) reset() {
	h.mu.Lock()
	h.counts, h.total = [clientBuckets]uint32{}, 0
	h.mu.Unlock()
}

// spread is how the clients' own p99s lie: the median client's, the
// slowest client's, and how many clients had deliveries to judge.
type spread struct {
	MedianP99ms  float64 `json:"client_p99_median_ms"`
	SlowestP99ms float64 `json:"client_p99_slowest_ms"`
	Clients      int     `json:"clients_measured"`
}

// ratio is the slowest client's p99 over the median client's: 1 when
// every client is served alike; 0 without a figure.
func (s spread) ratio() float64 {
	if s.MedianP99ms <= 0 {
		return 0
	}
	return s.SlowestP99ms / s.MedianP99ms
}

// spreadOf is the spread of the per-client p99s, in milliseconds, of
// every client that had a delivery; clients without any are left out.
func spreadOf(p99s []float64) spread {
	if len(p99s) == 0 {
		return spread{}
	}
	return spread{MedianP99ms: median(p99s), SlowestP99ms: slices.Max(p99s), Clients: len(p99s)}
}

// clientSpread reads each client's p99, resets the histograms for the
// next step, and returns their spread.
func clientSpread(hs []clientHist) spread {
	var p99s []float64
	for i := range hs {
		if v, ok := hs[i].quantile(0.99); ok {
			p99s = append(p99s, v/1000)
		}
		hs[i].reset()
	}
	return spreadOf(p99s)
}
