package imapi

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts a Client's calls of the IM's REST API.
type Metrics struct {
	calls   *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

// NewMetrics registers the IM API metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		// Labelled by app (the apps of -im-keys, a bounded set) and by
		// the API's command, one of the few the client calls.
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_im_api_calls_total",
			Help: "Calls of the IM's REST API by app, api (the command, e.g. get_role_in_group) and result: ok; fail (a FAIL answer); rate_limited (a FAIL answer for the IM's rate); rate_spent (not made: the app's -im-api-rate was spent until the deadline); timeout (no answer within the deadline); canceled (the caller gave up); error (unreachable, an HTTP error, or an answer that is not the IM's JSON).",
		}, []string{"app", "api", "result"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "imhub_im_api_seconds",
			Help:    "Time the IM's REST API took to answer a call that was made, by app and api, whatever the answer.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 11),
		}, []string{"app", "api"}),
	}
	reg.MustRegister(m.calls, m.seconds)
	return m
}

// count counts a call of api for app that ended with err.
func (m *Metrics) count(app, api string, err error) {
	if m != nil {
		m.calls.WithLabelValues(app, api, result(err)).Inc()
	}
}

// observe records how long a call that was made took.
func (m *Metrics) observe(app, api string, d time.Duration) {
	if m != nil {
		m.seconds.WithLabelValues(app, api).Observe(d.Seconds())
	}
}

// result is the result label of a call that ended with err.
func result(err error) string {
	var ie *Error
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrRateSpent):
		return "rate_spent"
	case errors.As(err, &ie) && ie.RateLimited():
		return "rate_limited"
	case errors.As(err, &ie):
		return "fail"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "error"
}
