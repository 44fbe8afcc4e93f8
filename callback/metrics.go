package callback

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Results a callback can have, the values of the "result" label.
const (
	ResultPublished    = "published"
	ResultDuplicate    = "duplicate"
	ResultSpooled      = "spooled" // kept on local disk, published when the broker is back
	ResultIgnored      = "ignored" // a command that is not published
	ResultBadMethod    = "method_not_allowed"
	ResultUnknownApp   = "unknown_app"
	ResultUnauthorized = "unauthorized"
	ResultTooLarge     = "too_large"
	ResultBadRequest   = "bad_request"
	ResultUnavailable  = "unavailable"
)

// ResultForwarded is the result of a callback the app's own backend
// answered, or -forward-fail answered for it (docs/protocol.md#forwarding).
const ResultForwarded = "forwarded"

// Metrics are the callback endpoint's Prometheus metrics.
type Metrics struct {
	callbacks   *prometheus.CounterVec
	invalidUTF8 *prometheus.CounterVec
	publish     prometheus.Histogram
	dedupe      prometheus.Counter
}

// NewMetrics registers the callback metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_callbacks_total",
			Help: "IM callbacks received, by command and result.",
		}, []string{"command", "result"}),
		// Its own counter, not a result: a repaired callback still has a
		// result (published, duplicate, bad_request…), counted as usual.
		invalidUTF8: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_callback_invalid_utf8_total",
			Help: "IM callbacks whose text (body, ClientIP or OptPlatform) was not valid UTF-8 and was repaired, each bad byte replaced by U+FFFD, by command.",
		}, []string{"command"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "imhub_publish_duration_seconds",
			Help:    "Time to publish one event to the broker, deduplication included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
		dedupe: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imhub_dedupe_hits_total",
			Help: "Callbacks recognised as a repeat of an event already published.",
		}),
	}
	reg.MustRegister(m.callbacks, m.invalidUTF8, m.publish, m.dedupe)
	return m
}

func (m *Metrics) count(cmd, result string) {
	if m == nil {
		return
	}
	m.callbacks.WithLabelValues(commandLabel(cmd), result).Inc()
	if result == ResultDuplicate {
		m.dedupe.Inc()
	}
}

// countInvalidUTF8 counts a callback whose text had to be repaired, once
// however many bytes were bad.
func (m *Metrics) countInvalidUTF8(cmd string) {
	if m != nil {
		m.invalidUTF8.WithLabelValues(commandLabel(cmd)).Inc()
	}
}

func (m *Metrics) observePublish(seconds float64) {
	if m != nil {
		m.publish.Observe(seconds)
	}
}
