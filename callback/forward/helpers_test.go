package forward_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/forward"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/hubtest"
)

const (
	appA  = "1400000000"
	appB  = "1400000001"
	token = "s3cret"
)

// received is what a test backend was sent.
type received struct {
	Query       url.Values
	RawQuery    string
	ContentType string
	Body        string
}

// backend is an httptest server that records each request and answers with
// the function the test gives.
type backend struct {
	*httptest.Server
	mu   sync.Mutex
	got  []received
	seen chan received
}

func newBackend(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *backend {
	t.Helper()
	b := &backend{seen: make(chan received, 1000)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{Query: r.URL.Query(), RawQuery: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"), Body: string(body)}
		b.mu.Lock()
		b.got = append(b.got, rec)
		n := len(b.got)
		b.mu.Unlock()
		select {
		case b.seen <- rec:
		default:
		}
		answer(w, r, n)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.got...)
}

func answerOK(w http.ResponseWriter, _ *http.Request, _ int) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)
}

// hubFixture is the callback handler with a forwarder, in front of an
// in-process broker.
type hubFixture struct {
	srv *httptest.Server
	fwd *forward.Forwarder
	reg *prometheus.Registry
	log *hubtest.SyncBuffer
}

func newHub(t *testing.T, cfg forward.Config, store forward.Store, queue forward.Queue, apps ...callback.App) *hubFixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	logBuf := &hubtest.SyncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logBuf, nil))
	f := forward.New(cfg, store, queue)
	b := broker.NewMemory(broker.Config{DedupeWindow: time.Minute})
	t.Cleanup(func() { b.Close() })
	h := callback.NewHandler(callback.Config{Apps: apps, Forward: f, Logger: cfg.Logger}, b)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &hubFixture{srv: srv, fwd: f, reg: reg, log: logBuf}
}

// run starts the forwarder's workers until the test ends.
func (h *hubFixture) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.fwd.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// post sends a callback to the hub and returns the status and body.
func (h *hubFixture) post(t *testing.T, app, command, body string, extra ...string) (int, string) {
	t.Helper()
	q := url.Values{"SdkAppid": {app}, "CallbackCommand": {command}, "contenttype": {"json"}, "ClientIP": {"127.0.0.1"}, "OptPlatform": {"Web"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	resp, err := http.Post(h.srv.URL+"/im/callback?"+q.Encode(), "application/json; charset=utf-8", strings.NewReader(body))
	if err != nil {
		t.Fatalf("post callback: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// count is imhub_forward_total{app,result}.
func (h *hubFixture) count(t *testing.T, app, result string) float64 {
	t.Helper()
	return h.metric(t, "imhub_forward_total", map[string]string{"app": app, "result": result})
}

// gauge is the gauge name{app}.
func (h *hubFixture) gauge(t *testing.T, name, app string) float64 {
	t.Helper()
	return h.metric(t, name, map[string]string{"app": app})
}

// metric is the value of the series of name with labels; 0 if none.
func (h *hubFixture) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupMsg is a group message callback whose MsgKey is "k<n>", the key
// tests count deliveries by.
func groupMsg(n int) string {
	return `{"CallbackCommand":"Group.CallbackAfterSendMsg","GroupId":"@TGS#1","Type":"Public","From_Account":"jared",` +
		`"Operator_Account":"admin","Random":1,"MsgSeq":` + strconv.Itoa(n) + `,"MsgTime":1490686222,"MsgKey":"k` + strconv.Itoa(n) + `",` +
		`"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hi"}}]}`
}
