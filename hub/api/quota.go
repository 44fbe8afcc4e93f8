package api

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Quota is the server API's rate limit per app, on this node. Every call
// counts, whichever it is; a request refused for a bad key counts for no
// app. The limit is each node's own: N nodes behind a load balancer let
// an app make up to N times as many requests.
type Quota struct {
	// Rate is the requests a second an app may make on average; zero
	// sets no limit.
	Rate float64
	// Burst is the requests an app may make at once [twice Rate, at
	// least 1].
	Burst int
}

// quota keeps each app's token bucket. Its map is written only by
// newQuota; rate.Limiter is safe for concurrent use.
type quota struct {
	rate float64
	apps map[string]*rate.Limiter
}

func newQuota(cfg Quota, apps []string) *quota {
	q := &quota{rate: cfg.Rate}
	if cfg.Rate <= 0 {
		return q
	}
	burst := cfg.Burst
	if burst <= 0 {
		burst = int(min(math.Max(2*cfg.Rate, 1), math.MaxInt32))
	}
	q.apps = make(map[string]*rate.Limiter, len(apps))
	for _, app := range apps {
		q.apps[app] = rate.NewLimiter(rate.Limit(cfg.Rate), burst)
	}
	return q
}

// take charges app one request at now. When it is refused, wait is how
// long until the app may make one again.
func (q *quota) take(app string, now time.Time) (wait time.Duration, ok bool) {
	l := q.apps[app]
	if l == nil || l.AllowN(now, 1) {
		return 0, true
	}
	return time.Duration((1 - l.TokensAt(now)) / q.rate * float64(time.Second)), false
}

// burst is app's Burst, for an answer.
func (q *quota) burst(app string) int {
	if l := q.apps[app]; l != nil {
		return l.Burst()
	}
	return 0
}

// retryAfter is wait as Retry-After's whole seconds, at least one: a
// caller that waits that long is let in.
func retryAfter(wait time.Duration) int64 {
	return max(1, int64(math.Ceil(wait.Seconds())))
}
