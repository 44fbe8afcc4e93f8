package forward

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/internal/redact"
)

// Target is one app's own backend.
type Target struct {
	// App is the SdkAppid.
	App string
	// URL is where the app's callbacks go: http or https. Each goes with
	// the URL's own query, then the callback's. Logs and errors show it
	// as scheme://host/path only ([BackendName]).
	URL string
	// Token is the app's callback token, when it has one: each attempt is
	// signed afresh with it.
	Token string
}

// Config configures a [Forwarder]. Every field but Targets has a usable
// zero value.
type Config struct {
	Targets []Target
	// Timeout bounds a synchronous forward, answer included; default 1.5s.
	// The IM waits 2s at most for a Before* verdict.
	Timeout time.Duration
	// Deny answers a Before* callback whose backend failed with ErrorCode
	// 1 rather than the IM's own default on a timeout, OK.
	Deny bool
	// MaxAge is how long a queued callback is retried before it is kept
	// aside as a dead letter; default 24h.
	MaxAge time.Duration
	// AttemptTimeout bounds one queued delivery attempt; default 10s.
	AttemptTimeout time.Duration
	// Concurrency is how many deliveries of one app are in flight at once;
	// default 16.
	Concurrency int
	// MaxAnswer is the most of a backend's answer that is read; a longer
	// answer is a failure. Default 64 KiB.
	MaxAnswer int64
	// RetryBase and RetryMax shape the backoff: attempt n waits a random
	// time up to min(RetryMax, RetryBase·2ⁿ) ("full jitter"). Defaults 1s
	// and 5m.
	RetryBase, RetryMax time.Duration
	// EnqueueTimeout bounds the store's write on the IM's answer path;
	// beyond it the entry goes to the spool. Default 1s.
	EnqueueTimeout time.Duration
	// Consumer names this process to the store; default a random name.
	Consumer string
	Logger   *slog.Logger
	// Registerer, when set, receives the forward metrics.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Transport, when set, replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// Queue is where Enqueue puts entries: a [Store] through [StoreQueue], or
// a spool in front of one. Message.Data is the entry's JSON.
type Queue interface {
	Publish(ctx context.Context, m broker.Message) (broker.Result, error)
}

// Forwarder forwards an app's callbacks to its own backend. Start
// [Forwarder.Run] for the queued ones.
type Forwarder struct {
	cfg     Config
	targets map[string]*backend
	client  *http.Client
	store   Store
	queue   Queue
	log     *slog.Logger
	m       *metrics
}

// DefaultConfig returns the settings New gives the zero fields of a
// Config that have a default.
func DefaultConfig() Config {
	return Config{
		Timeout:        1500 * time.Millisecond,
		MaxAge:         24 * time.Hour,
		AttemptTimeout: 10 * time.Second,
		Concurrency:    16,
		MaxAnswer:      64 << 10,
		RetryBase:      time.Second,
		RetryMax:       5 * time.Minute,
		EnqueueTimeout: time.Second,
	}
}

// New returns a forwarder that queues through queue into store; queue nil
// means straight into store.
func New(cfg Config, store Store, queue Queue) *Forwarder {
	d := DefaultConfig()
	if cfg.Timeout <= 0 {
		cfg.Timeout = d.Timeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = d.MaxAge
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = d.AttemptTimeout
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = d.Concurrency
	}
	if cfg.MaxAnswer <= 0 {
		cfg.MaxAnswer = d.MaxAnswer
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = d.RetryBase
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = d.RetryMax
	}
	if cfg.EnqueueTimeout <= 0 {
		cfg.EnqueueTimeout = d.EnqueueTimeout
	}
	if cfg.Consumer == "" {
		cfg.Consumer = randomID()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = cfg.Concurrency + 8
		tr = t
	}
	if queue == nil {
		queue = StoreQueue(store, cfg.EnqueueTimeout, cfg.Logger)
	}
	f := &Forwarder{
		cfg:     cfg,
		targets: make(map[string]*backend, len(cfg.Targets)),
		// A redirect is the backend's answer, not an instruction: the
		// body and signature are for the configured URL only.
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		store: store,
		queue: queue,
		log:   cfg.Logger,
	}
	for _, t := range cfg.Targets {
		f.targets[t.App] = newBackend(t)
	}
	f.m = newMetrics(cfg.Registerer, cfg.Targets)
	return f
}

// BackendName is how logs and errors show a backend's URL: its scheme,
// host and path, without user info, query or fragment.
func BackendName(url string) string { return redact.URL(url) }

// Synchronous reports whether a command is one the IM waits on a verdict
// for, and so is proxied rather than queued.
func Synchronous(command string) bool {
	_, rest, ok := strings.Cut(command, ".")
	return ok && strings.HasPrefix(rest, "CallbackBefore")
}

// Answers reports whether the forwarder answers app's command itself: a
// Before* command of an app with a backend.
func (f *Forwarder) Answers(app, command string) bool {
	_, ok := f.targets[app]
	return ok && Synchronous(command)
}

var (
	okBody   = []byte(`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)
	denyBody = []byte(`{"ActionStatus":"FAIL","ErrorInfo":"the app's backend did not answer","ErrorCode":1}`)
)

// Answer proxies a callback the IM waits on, already accepted, to app's
// backend and writes the IM's answer: the backend's status and body as
// they are, or, when the backend fails, 200 with OK (or ErrorCode 1 with
// Config.Deny). The backend fails when it cannot be reached, does not
// answer in full within Config.Timeout, answers 1xx, 3xx (redirects are
// not followed) or 5xx, answers more than Config.MaxAnswer bytes, or
// answers a body that is not JSON. Other 4xx answers are the backend's
// verdict and are passed on.
func (f *Forwarder) Answer(w http.ResponseWriter, r *http.Request, app string, body []byte) {
	e := f.entry(r, app, body)
	status, answer, err := f.attempt(r.Context(), e, f.cfg.Timeout)
	if err == nil {
		err = proxyFailure(status, answer)
	}
	if err != nil {
		f.m.count(app, resultFallback)
		b := okBody
		if f.cfg.Deny {
			b = denyBody
		}
		f.log.Warn("the app's backend failed a synchronous callback; answered for it", "app", app,
			"command", clip(e.Command), "deny", f.cfg.Deny, "err", err)
		write(w, http.StatusOK, b)
		return
	}
	f.m.count(app, resultAnswered)
	write(w, status, answer)
}

func proxyFailure(status int, answer []byte) error {
	switch {
	case status < 200 || (status >= 300 && status < 400) || status >= 500:
		return fmt.Errorf("backend answered %d", status)
	case !json.Valid(answer):
		return fmt.Errorf("backend answered %d with a body that is not JSON", status)
	}
	return nil
}

func write(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Enqueue queues an accepted callback of app for delivery to its backend,
// when app has one; otherwise it does nothing. An error means the entry is
// neither in the store nor in the spool: the IM must not be told OK.
func (f *Forwarder) Enqueue(ctx context.Context, r *http.Request, app string, body []byte) error {
	if _, ok := f.targets[app]; !ok {
		return nil
	}
	e := f.entry(r, app, body)
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("forward: encode entry: %w", err)
	}
	res, err := f.queue.Publish(ctx, broker.Message{App: app, ID: e.ID, Data: data})
	if err != nil {
		f.m.count(app, resultUnavailable)
		return fmt.Errorf("forward: queue %s callback of app %s: %w", clip(e.Command), app, err)
	}
	if res.Spooled {
		f.m.count(app, resultSpooled)
	} else {
		f.m.count(app, resultQueued)
	}
	return nil
}

func (f *Forwarder) entry(r *http.Request, app string, body []byte) Entry {
	return Entry{
		ID:          randomID(),
		App:         app,
		Command:     r.URL.Query().Get("CallbackCommand"),
		Query:       r.URL.RawQuery,
		ContentType: r.Header.Get("Content-Type"),
		Body:        body,
		Accepted:    f.cfg.Now().UnixMilli(),
	}
}

// Run delivers queued entries, with one worker per app, until ctx is done.
// Deliveries in flight then are abandoned; their entries stay in the store
// and are delivered again, by this process or another.
func (f *Forwarder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for app := range f.targets {
		wg.Go(func() { f.work(ctx, app) })
	}
	wg.Go(func() { f.watchBacklog(ctx) })
	wg.Wait()
	return nil
}

// watchBacklog keeps the backlog gauge current.
func (f *Forwarder) watchBacklog(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		for app := range f.targets {
			bctx, cancel := context.WithTimeout(ctx, time.Second)
			if n, err := f.store.Backlog(bctx, app); err == nil {
				f.m.backlog.WithLabelValues(app).Set(float64(n))
			}
			if n, err := f.store.DeadCount(bctx, app); err == nil {
				f.m.dead.WithLabelValues(app).Set(float64(n))
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// NewID returns a random name, 24 hex digits.
func NewID() string { return randomID() }

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clip bounds a value taken from a request before it is logged.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]) + "…"
}

var errAnswerTooLarge = errors.New("answer is too large")
