package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every latency falls in a bucket whose value is within 1/64 of it, the
// buckets rise with the latency, and what is past the last one is kept in
// it.
func TestClientBuckets(t *testing.T) {
	last := -1
	for _, us := range []int64{0, 1, 2, 63, 64, 65, 100, 127, 128, 129, 1000, 4095, 4096, 99_999, 1_000_000, 12_345_678, 67_000_000} {
		i := bucketOf(us)
		require.GreaterOrEqual(t, i, last, "%d µs", us)
		require.Less(t, i, clientBuckets, "%d µs", us)
		last = i
		assert.InEpsilon(t, float64(max(us, 1)), max(bucketValue(i), 1), 1.0/64, "%d µs", us)
	}
	assert.Equal(t, 63, bucketOf(63), "exact below 64 µs")
	assert.Equal(t, 64, bucketOf(64))
	assert.Equal(t, bucketOf(64), bucketOf(65), "two values to a bucket from 64 µs")
	assert.NotEqual(t, bucketOf(65), bucketOf(66))
	assert.Equal(t, 64.5, bucketValue(64), "the middle of 64 and 65")
	assert.Equal(t, clientBuckets-1, bucketOf(1<<40), "beyond the range: the last bucket")
	assert.Equal(t, 0, bucketOf(-5), "a clock that stepped back counts as nothing")
}

// A client's percentile is the value of the bucket where the
// ceil(q × n)-th smallest latency falls.
func TestClientQuantile(t *testing.T) {
	var h clientHist
	_, ok := h.quantile(0.99)
	assert.False(t, ok, "no deliveries, no figure")
	for range 98 {
		h.record(10)
	}
	h.record(20)
	h.record(5000)
	tests := []struct {
		q    float64
		want float64
	}{
		{0.5, 10}, {0.98, 10}, {0.99, 20}, {0.991, bucketValue(bucketOf(5000))}, {1, bucketValue(bucketOf(5000))}, {0.0001, 10},
	}
	for _, tt := range tests {
		v, ok := h.quantile(tt.q)
		require.True(t, ok)
		assert.Equal(t, tt.want, v, "q=%v", tt.q)
	}
	h.reset()
	_, ok = h.quantile(0.5)
	assert.False(t, ok, "reset forgets")
	h.record(7)
	v, _ := h.quantile(0.99)
	assert.Equal(t, 7.0, v, "one delivery is every percentile")
}

// The spread is the slowest client's p99 over the median client's; a
// fleet served alike has a spread of 1.
func TestSpread(t *testing.T) {
	tests := []struct {
		name    string
		p99s    []float64
		want    spread
		wantRat float64
	}{
		{"none", nil, spread{}, 0},
		{"alike", []float64{5, 5, 5}, spread{5, 5, 3}, 1},
		{"one far behind", []float64{4, 6, 5, 5, 900}, spread{5, 900, 5}, 180},
		{"even count: the middle two", []float64{2, 4, 6, 8}, spread{5, 8, 4}, 1.6},
		{"a median of zero", []float64{0, 0, 3}, spread{0, 3, 3}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spreadOf(tt.p99s)
			assert.Equal(t, tt.want, s)
			assert.InDelta(t, tt.wantRat, s.ratio(), 1e-9)
		})
	}
}

// clientSpread takes each client's p99 in milliseconds, leaves out the
// clients that had nothing, and starts every client again.
func TestClientSpread(t *testing.T) {
	hs := make([]clientHist, 4)
	for range 100 {
		hs[0].record(2000) // 2 ms
		hs[1].record(3000)
		hs[2].record(40) // 0.04 ms
	}
	for range 99 {
		hs[2].record(40)
	}
	hs[2].record(3_000_000) // one in 200: below its p99
	s := clientSpread(hs)
	assert.Equal(t, 3, s.Clients, "the client with no delivery is left out")
	assert.InDelta(t, bucketValue(bucketOf(2000))/1000, s.MedianP99ms, 1e-9)
	assert.InDelta(t, bucketValue(bucketOf(3000))/1000, s.SlowestP99ms, 1e-9)
	for i := range hs {
		_, ok := hs[i].quantile(0.5)
		assert.False(t, ok, "client %d reset", i)
	}
	assert.Equal(t, spread{}, clientSpread(hs), "nothing since")
}
