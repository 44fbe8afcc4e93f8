package forward

import "github.com/prometheus/client_golang/prometheus"

// Results of a forward, the values of imhub_forward_total's "result" label.
const (
	resultQueued      = "queued"      // in the store, to be delivered
	resultSpooled     = "spooled"     // on local disk until the store is back
	resultUnavailable = "unavailable" // neither: the IM was answered 503
	resultDelivered   = "delivered"
	resultRetried     = "retried"  // an attempt failed; another is due
	resultDead        = "dead"     // past max age: kept as a dead letter
	resultAnswered    = "answered" // Before*: the backend's answer went to the IM
	resultFallback    = "fallback" // Before*: the backend failed; -forward-fail answered
)

type metrics struct {
	total   *prometheus.CounterVec
	backlog *prometheus.GaugeVec
	lag     *prometheus.GaugeVec
	dead    *prometheus.GaugeVec
}

// newMetrics makes the metrics, registered with reg when it is not nil.
// The app label takes only configured apps, each series there from the
// start.
func newMetrics(reg prometheus.Registerer, targets []Target) *metrics {
	m := &metrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_forward_total",
			Help: "Callbacks forwarded to apps' own backends, by app and result (queued, spooled, unavailable, delivered, retried, dead, answered, fallback).",
		}, []string{"app", "result"}),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imhub_forward_backlog",
			Help: "Callbacks queued for an app's backend and not yet delivered (dead letters and the local spool excepted).",
		}, []string{"app"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imhub_forward_lag_seconds",
			Help: "Time from acceptance to delivery of the last callback delivered to an app's backend.",
		}, []string{"app"}),
		dead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "imhub_forward_dead_letters",
			Help: "Callbacks kept aside after failing for -forward-max-age; list and replay them with hub forward-dead.",
		}, []string{"app"}),
	}
	for _, t := range targets {
		m.backlog.WithLabelValues(t.App)
		m.lag.WithLabelValues(t.App)
		m.dead.WithLabelValues(t.App)
		for _, r := range []string{resultQueued, resultDelivered, resultRetried, resultDead} {
			m.total.WithLabelValues(t.App, r)
		}
	}
	if reg != nil {
		reg.MustRegister(m.total, m.backlog, m.lag, m.dead)
	}
	return m
}

func (m *metrics) count(app, result string) { m.total.WithLabelValues(app, result).Inc() }
