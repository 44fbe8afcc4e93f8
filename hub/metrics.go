package hub

import (
	"strconv"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the hub's Prometheus metrics.
type Metrics struct {
	connections   prometheus.Gauge
	subscriptions prometheus.Gauge
	channels      prometheus.Gauge
	delivered     prometheus.Counter
	dropped       prometheus.Counter
	rateLimited   prometheus.Counter
	closes        *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
	fanout        prometheus.Histogram
	repairs       *prometheus.CounterVec
	// unchecked counts tokens Revocations could not check, by action;
	// uncheckedSessions are the sessions let in so, until checked, and
	// rechecks those checked later, by result.
	unchecked         *prometheus.CounterVec
	uncheckedSessions prometheus.Gauge
	rechecks          *prometheus.CounterVec
	// removals counts the subscriptions a group's own events ended.
	removals *prometheus.CounterVec
}

// NewMetrics registers the hub's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imhub_ws_connections", Help: "Open WebSocket sessions on this node.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imhub_ws_subscriptions", Help: "Channel subscriptions of the sessions on this node.",
		}),
		channels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imhub_ws_channels", Help: "Channels this node is subscribed to at the broker.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imhub_ws_events_delivered_total", Help: "Event frames queued to sessions.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imhub_ws_frames_dropped_total", Help: "Frames not delivered because their session was closed as too slow.",
		}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "imhub_ws_frames_rate_limited_total", Help: "Client frames not carried out because the client sent too fast (answered rate_limited, or closed with 1008).",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_ws_closes_total", Help: "Sessions the hub closed, by close code.",
		}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_ws_auth_failures_total", Help: "Credentials refused at connect or refresh, by reason and credential (jwt or usersig, the IM's own login): missing, malformed, signature, expired, not_yet_valid, claims, app, lifetime, revoked, mixed (more than one credential), refresh_other_user, refresh_other_credential.",
		}, []string{"reason", "credential"}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "imhub_fanout_duration_seconds",
			Help:    "From a publication's arrival at the node to its frame queued for the last local subscriber.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 3, 12),
		}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_ws_gap_repairs_total",
			Help: "Gaps in a subscription's stream filled from history, by outcome: recovered; restarted (the stream began anew, the client was told and got the new stream); lost (history did not reach back, the client was told); failed.",
		}, []string{"outcome"}),
		unchecked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_ws_revocation_unchecked_total",
			Help: "Connects and refreshes whose token could not be checked against the revocations (Redis did not answer), by action: admitted (checked again once Redis answers) or refused (-revocation-check closed).",
		}, []string{"action"}),
		uncheckedSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "imhub_ws_sessions_unchecked", Help: "Sessions admitted with a token not yet checked against the revocations, waiting for Redis.",
		}),
		rechecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_ws_revocation_rechecks_total",
			Help: "Sessions admitted unchecked whose token was checked later, by result: clear, or revoked (closed with 4010).",
		}, []string{"result"}),
	}
	m.removals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imhub_membership_removals_total",
		Help: "Group subscriptions the hub ended right after their session was sent the group's own event, by reason: removed (a group.member.left that names the user), destroyed (group.destroyed).",
	}, []string{"reason"})
	reg.MustRegister(m.removals, m.unchecked, m.uncheckedSessions, m.rechecks, m.repairs, m.connections, m.subscriptions, m.channels, m.delivered, m.dropped, m.rateLimited, m.closes, m.authFailures, m.fanout)
	return m
}

// nopMetrics lets the hub run without a registry (tests, examples).
func nopMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }

func (m *Metrics) closed(code websocket.StatusCode) {
	m.closes.WithLabelValues(strconv.Itoa(int(code))).Inc()
}
