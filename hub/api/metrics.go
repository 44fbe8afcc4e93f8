package api

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the API's requests.
type Metrics struct {
	requests *prometheus.CounterVec
	limited  *prometheus.CounterVec
}

// NewMetrics registers the API's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_api_requests_total",
			Help: "Server API requests by call (publish, disconnect, revoke, presence, other) and HTTP status.",
		}, []string{"call", "code"}),
		// Labelled by app: the apps of the keys, a bounded set.
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "imhub_api_rate_limited_total",
			Help: "Server API requests refused with 429 by app, as the app was over -api-rate / -api-burst on this node.",
		}, []string{"app"}),
	}
	reg.MustRegister(m.requests, m.limited)
	return m
}

// overQuota counts a request of app refused with 429.
func (m *Metrics) overQuota(app string) {
	if m != nil {
		m.limited.WithLabelValues(app).Inc()
	}
}

// calls are the label values of the API's paths; any other path is "other",
// so that a caller cannot make labels without end.
var calls = map[string]string{
	"/api/publish":    "publish",
	"/api/disconnect": "disconnect",
	"/api/revoke":     "revoke",
	"/api/presence":   "presence",
}

func (m *Metrics) count(path string, status int) {
	if m == nil {
		return
	}
	call, ok := calls[path]
	if !ok {
		call = "other"
	}
	m.requests.WithLabelValues(call, strconv.Itoa(status)).Inc()
}

// statusWriter remembers the status a handler answered. It hides the
// server's writer from http.MaxBytesReader: see Handler.decode.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Requests is the counter of call's requests answered with status, for
// tests.
func (m *Metrics) Requests(call string, status int) prometheus.Counter {
	return m.requests.WithLabelValues(call, strconv.Itoa(status))
}

// RateLimited is the counter of app's requests refused with 429, for
// tests.
func (m *Metrics) RateLimited(app string) prometheus.Counter {
	return m.limited.WithLabelValues(app)
}
