package api

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the API's requests.
type Metrics struct {
	requests *prometheus.CounterVec
}

// NewMetrics registers the API's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "imhub_api_requests_total",
		Help: "Server API requests by call (publish, disconnect, revoke, presence, other) and HTTP status.",
	}, []string{"call", "code"})}
	reg.MustRegister(m.requests)
	return m
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
