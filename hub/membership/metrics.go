package membership

import "github.com/prometheus/client_golang/prometheus"

// metrics count the Checks by result, and the changes not stored.
type metrics struct {
	kept, asked, refused, unavailable prometheus.Counter
	// unstored counts the callbacks' changes the store did not take.
	unstored prometheus.Counter
}

// newMetrics registers the membership metrics with reg, when set.
func newMetrics(reg prometheus.Registerer) *metrics {
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imhub_membership_checks_total",
		Help: "Membership checks by result: kept (a member, by an answer kept, on any node, or by a callback), asked (a member, by asking the IM), refused (not a member, however known), unavailable (the IM could not be asked and no kept answer served).",
	}, []string{"result"})
	unstored := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "imhub_membership_unstored_total",
		Help: "Changes of membership a callback brought that the store shared by the nodes did not take (Redis away): each node still applies the event as it reaches it, and keeps the exits it saw for a minute.",
	})
	if reg != nil {
		reg.MustRegister(checks, unstored)
	}
	return &metrics{
		unstored:    unstored,
		kept:        checks.WithLabelValues("kept"),
		asked:       checks.WithLabelValues("asked"),
		refused:     checks.WithLabelValues("refused"),
		unavailable: checks.WithLabelValues("unavailable"),
	}
}
