package membership

import "github.com/prometheus/client_golang/prometheus"

// metrics count the Checks by result.
type metrics struct {
	kept, asked, refused, unavailable prometheus.Counter
}

// newMetrics registers the membership metrics with reg, when set.
func newMetrics(reg prometheus.Registerer) *metrics {
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imhub_membership_checks_total",
		Help: "Membership checks by result: kept (a member, by an answer kept, on any node, or by a callback), asked (a member, by asking the IM), refused (not a member, however known), unavailable (the IM could not be asked and no kept answer served).",
	}, []string{"result"})
	if reg != nil {
		reg.MustRegister(checks)
	}
	return &metrics{
		kept:        checks.WithLabelValues("kept"),
		asked:       checks.WithLabelValues("asked"),
		refused:     checks.WithLabelValues("refused"),
		unavailable: checks.WithLabelValues("unavailable"),
	}
}
