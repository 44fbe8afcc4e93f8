package membership_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/imstub"
	"github.com/imhub/imhub/internal/redistest"
)

const app = "1400000000"

var keys = map[string][]byte{app: []byte("the-app-secret-key")}

// im is the IM's REST API for a test: the stand-in behind a real HTTP
// server that counts every request it gets (those it fails too) and can
// hold them until told.
type im struct {
	stub     *imstub.Server
	srv      *httptest.Server
	client   *imapi.Client
	requests atomic.Int64

	mu      sync.Mutex
	gate    chan struct{}
	arrived chan struct{}
	body    string // when set, every answer is HTTP 200 with this body
}

// newIM starts a stand-in and a client of it made with cfg.
func newIM(t testing.TB, cfg imapi.Config) *im {
	t.Helper()
	m := &im{stub: imstub.New(keys, "administrator")}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	cfg.BaseURL = m.srv.URL
	if cfg.Keys == nil {
		cfg.Keys = keys
	}
	if cfg.Rate == 0 {
		cfg.Rate, cfg.Burst = 10000, 10000
	}
	c, err := imapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.client = c
	return m
}

func (m *im) serve(w http.ResponseWriter, r *http.Request) {
	m.requests.Add(1)
	m.mu.Lock()
	gate, arrived, body := m.gate, m.arrived, m.body
	m.mu.Unlock()
	if gate != nil {
		arrived <- struct{}{}
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if body != "" {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
		return
	}
	m.stub.ServeHTTP(w, r)
}

// answerWith makes every answer from now on HTTP 200 with body.
func (m *im) answerWith(body string) {
	m.mu.Lock()
	m.body = body
	m.mu.Unlock()
}

// hold makes the requests from now on wait until release; each sends on
// arrived as it comes.
func (m *im) hold() (arrived <-chan struct{}, release func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	gate, a := make(chan struct{}), make(chan struct{}, 1024)
	m.gate, m.arrived = gate, a
	var once sync.Once
	return a, func() {
		once.Do(func() {
			m.mu.Lock()
			m.gate = nil
			m.mu.Unlock()
			close(gate)
		})
	}
}

// calls is how many get_role_in_group calls the stand-in answered about
// group.
func (m *im) calls(group string) int {
	n, _ := m.stub.Calls(app, group)
	return n
}

// newChecker starts a Checker asking m, closed when the test ends.
func newChecker(t testing.TB, m *im, cfg membership.Config) *membership.Checker {
	t.Helper()
	cfg.IM = m.client
	c, err := membership.NewChecker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// stores are the two stores every behaviour is checked on: nil (memory)
// and a real redis-server, emptied for each subtest.
func stores(t *testing.T, run func(t *testing.T, rdb redis.UniversalClient)) {
	t.Run("memory", func(t *testing.T) { run(t, nil) })
	t.Run("redis", func(t *testing.T) {
		rdb := redistest.Start(t).Client()
		run(t, rdb)
	})
}

// clock is a test's clock, moved on by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// waitFor waits until cond holds, failing the test if it does not within
// a minute: a bound for a wedged test, not a speed asserted.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// check is Check that fails the test on an error with a verdict other
// than Unavailable.
func check(t testing.TB, c *membership.Checker, group, user string) (membership.Verdict, error) {
	t.Helper()
	v, err := c.Check(context.Background(), app, group, user)
	if (err != nil) != (v == membership.Unavailable) {
		t.Fatalf("Check(%s, %s) = %v, %v: an error goes with Unavailable, and only with it", group, user, v, err)
	}
	return v, err
}
