package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/control"
	"github.com/imhub/imhub/internal/textclip"
)

// Publisher publishes events: the broker. The API publishes to it
// directly, not through the callback spool: its caller is told 503 and
// retries with the same idempotency key, which the spool could not answer
// with an offset.
type Publisher interface {
	Publish(ctx context.Context, m broker.Message) (broker.Result, error)
	// History gives a channel's position, for a repeat whose first
	// offset the broker no longer knows.
	History(ctx context.Context, app, channel string, since *broker.Position) (broker.History, error)
}

// Presence answers who is connected, across every node.
type Presence interface {
	Users(ctx context.Context, app, channel string) (map[string]int, error)
	Connections(ctx context.Context, app, user string) (int, error)
}

// Bus sends a command to every node.
type Bus interface {
	Publish(ctx context.Context, c control.Command) error
	// Gather sends c as Publish does, and returns the sessions the
	// nodes closed for it, summed.
	Gather(ctx context.Context, c control.Command) (int, error)
}

// Revocations keeps revocations for every node.
type Revocations interface {
	Store(ctx context.Context, app, user string, before time.Time) error
}

// Config configures the API. Zero fields take the defaults in brackets;
// Keys and the four parts are required.
type Config struct {
	// Keys are the API keys, each good for one app. Several keys may
	// name one app (a key being replaced).
	Keys []Key
	// MaxBody is the largest request body [1MiB] (413 beyond).
	MaxBody int64
	// Skew is how far in the future a revocation's issued_before may be,
	// for the caller's clock [60s].
	Skew time.Duration
	// Timeout bounds each request's work [5s].
	Timeout time.Duration
	// Quota limits each app's requests [none].
	Quota Quota

	Publisher   Publisher
	Presence    Presence
	Bus         Bus
	Revocations Revocations
	Logger      *slog.Logger
	// Metrics, when set, counts requests.
	Metrics *Metrics
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Handler serves /api/.
type Handler struct {
	cfg   Config
	keys  keyring
	quota *quota
	mux   *http.ServeMux
}

// DefaultConfig returns the settings New gives the zero fields of a
// Config that have a default, and the quota a hub gives each app unless
// told otherwise: 100 requests a second, 1000 at once. New takes a zero
// Quota as it stands: no limit.
func DefaultConfig() Config {
	return Config{
		MaxBody: 1 << 20,
		Skew:    time.Minute,
		Timeout: 5 * time.Second,
		Quota:   Quota{Rate: 100, Burst: 1000},
	}
}

// New returns the API's handler.
func New(cfg Config) *Handler {
	d := DefaultConfig()
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = d.MaxBody
	}
	if cfg.Skew <= 0 {
		cfg.Skew = d.Skew
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = d.Timeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var keyApps []string
	for _, k := range cfg.Keys {
		keyApps = append(keyApps, k.App)
	}
	h := &Handler{cfg: cfg, keys: newKeyring(cfg.Keys), quota: newQuota(cfg.Quota, keyApps), mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /api/publish", h.authed(h.publish))
	h.mux.HandleFunc("POST /api/disconnect", h.authed(h.disconnect))
	h.mux.HandleFunc("POST /api/revoke", h.authed(h.revoke))
	h.mux.HandleFunc("GET /api/presence", h.authed(h.presence))
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "no such API call: POST /api/publish, /api/disconnect, /api/revoke, GET /api/presence")
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w := &statusWriter{ResponseWriter: rw}
	defer func() { h.cfg.Metrics.count(r.URL.Path, w.status) }()
	// ServeMux answers a known path with the wrong method in plain text.
	if _, pattern := h.mux.Handler(r); pattern == "/api/" {
		for _, m := range []string{"POST /api/publish", "POST /api/disconnect", "POST /api/revoke", "GET /api/presence"} {
			method, path, _ := strings.Cut(m, " ")
			if r.URL.Path == path {
				w.Header().Set("Allow", method)
				fail(w, http.StatusMethodNotAllowed, "method must be "+method)
				return
			}
		}
	}
	h.mux.ServeHTTP(w, r)
}

// Off answers every /api/ request of a hub without API keys.
func Off() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fail(w, http.StatusNotFound, "the server API is off: start the hub with -api-keys SdkAppid:key")
	})
}

// request is what every call is given: the key's app and a deadline.
type request struct {
	ctx    context.Context
	keyApp string
	r      *http.Request
	w      http.ResponseWriter
}

// authed checks the API key first, then the key's app's quota: nothing
// else of a request is looked at before both pass.
func (h *Handler) authed(fn func(*request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := presentedKey(r)
		if key == "" {
			fail(w, http.StatusUnauthorized, "no API key: send Authorization: apikey <key>")
			return
		}
		app := h.keys.app(key)
		if app == "" {
			fail(w, http.StatusUnauthorized, "API key is not valid")
			return
		}
		if wait, ok := h.quota.take(app, h.cfg.Now()); !ok {
			h.cfg.Metrics.overQuota(app)
			secs := retryAfter(wait)
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			fail(w, http.StatusTooManyRequests, fmt.Sprintf("app %s is over this hub's server API rate limit (%g requests a second, %d at once): "+
				"nothing was done; retry after %d s", app, h.cfg.Quota.Rate, h.quota.burst(app), secs))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
		defer cancel()
		fn(&request{ctx: ctx, keyApp: app, r: r, w: w})
	}
}

// decode reads a JSON body of at most MaxBody into v, a pointer to a
// struct whose fields' JSON names are the keys the body may have, each
// exactly and once; false when it has answered the error.
func (h *Handler) decode(q *request, v any) bool {
	// MaxBytesReader is given the server's own writer: past the limit it
	// asks it, through a method no wrapper can forward, to close the
	// connection, whose unread rest of the body cannot be skipped.
	raw := q.w
	if sw, ok := raw.(*statusWriter); ok {
		raw = sw.ResponseWriter
	}
	body, err := io.ReadAll(http.MaxBytesReader(raw, q.r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			fail(q.w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", h.cfg.MaxBody))
		} else {
			fail(q.w, http.StatusBadRequest, "reading body: "+err.Error())
		}
		return false
	}
	// Whatever is published reaches clients in text frames, which must
	// be valid UTF-8.
	if !utf8.Valid(body) {
		fail(q.w, http.StatusBadRequest, "body is not valid UTF-8")
		return false
	}
	if msg := keysOf(v).checkObject(body); msg != "" {
		fail(q.w, http.StatusBadRequest, msg)
		return false
	}
	// The keys are v's names exactly, each once: encoding/json, which
	// prefers an exact match, fills each field from its own key.
	if err := json.Unmarshal(body, v); err != nil {
		fail(q.w, http.StatusBadRequest, "body is not the JSON object expected: "+clip(err.Error()))
		return false
	}
	return true
}

// app resolves a request's app: the key's when none is named. A key is
// good for its own app only; any other, served by this hub or not, is
// answered alike, so that one app's key does not learn the others.
func (h *Handler) app(q *request, named string) (string, bool) {
	switch {
	case named == "":
		return q.keyApp, true
	case named != q.keyApp:
		fail(q.w, http.StatusForbidden, "the API key is not for app "+clip(named))
		return "", false
	}
	return named, true
}

// maxName bounds a channel or user name, as the hub does.
const maxName = 300

// maxIdempotencyKey bounds an idempotency key.
const maxIdempotencyKey = 256

type publishRequest struct {
	App            string          `json:"app"`
	Channel        string          `json:"channel"`
	Data           json.RawMessage `json:"data"`
	IdempotencyKey string          `json:"idempotency_key"`
}

// Event is the event a publish makes: the shape of docs/protocol.md#events, with type
// "custom" and the caller's data.
type Event struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	App      string          `json:"app"`
	Time     int64           `json:"time"`
	Data     json.RawMessage `json:"data"`
	Received int64           `json:"received"`
}

// TypeCustom is the type of a published event.
const TypeCustom = "custom"

func (h *Handler) publish(q *request) {
	var req publishRequest
	if !h.decode(q, &req) {
		return
	}
	app, ok := h.app(q, req.App)
	if !ok {
		return
	}
	if msg := checkChannel(req.Channel, false); msg != "" {
		fail(q.w, http.StatusBadRequest, msg)
		return
	}
	if len(bytes.TrimSpace(req.Data)) == 0 || bytes.Equal(bytes.TrimSpace(req.Data), []byte("null")) {
		fail(q.w, http.StatusBadRequest, "data is required: any JSON value but null")
		return
	}
	if len(req.IdempotencyKey) > maxIdempotencyKey {
		fail(q.w, http.StatusBadRequest, fmt.Sprintf("idempotency_key is longer than %d bytes", maxIdempotencyKey))
		return
	}
	var data bytes.Buffer
	if err := json.Compact(&data, req.Data); err != nil {
		fail(q.w, http.StatusBadRequest, "data is not JSON")
		return
	}
	id := messageID(req.Channel, req.IdempotencyKey)
	now := h.cfg.Now().UnixMilli()
	ev, err := json.Marshal(Event{ID: id, Type: TypeCustom, App: app, Time: now, Data: data.Bytes(), Received: now})
	if err != nil {
		fail(q.w, http.StatusInternalServerError, "encode event: "+err.Error())
		return
	}
	res, err := h.cfg.Publisher.Publish(q.ctx, broker.Message{App: app, ID: id, Channels: []string{req.Channel, "app"}, Data: ev})
	if err != nil {
		h.cfg.Logger.Warn("api publish failed", "app", app, "err", err)
		fail(q.w, http.StatusServiceUnavailable, "not published, or not to every channel: the broker is unavailable; "+
			"try again with the same idempotency_key")
		return
	}
	out := struct {
		Offset    string `json:"offset,omitempty"`
		Duplicate bool   `json:"duplicate,omitempty"`
	}{Duplicate: res.Duplicate}
	if len(res.Positions) > 0 && res.Positions[0].Epoch != "" {
		out.Offset = res.Positions[0].String()
	}
	if out.Offset == "" {
		// The channel had it already, and its position is not known (its
		// dedupe key was written by a node that kept none): the channel's
		// latest position is at or after it, as good to recover from.
		if hist, err := h.cfg.Publisher.History(q.ctx, app, req.Channel, nil); err == nil && hist.Latest.Epoch != "" {
			out.Offset = hist.Latest.String()
		}
	}
	answer(q.w, out)
}

// messageID is a publication's message id: derived from the channel and
// the idempotency key, so that a repeat is recognised by the broker's
// dedupe on any node, or random without a key.
func messageID(channel, key string) string {
	if key == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		return "api:" + hex.EncodeToString(b[:])
	}
	sum := sha256.Sum256([]byte(channel + "\n" + key))
	return "api:" + hex.EncodeToString(sum[:16])
}

// checkChannel says what is wrong with a channel to publish to (or with
// app, to ask about), "" when nothing.
func checkChannel(ch string, app bool) string {
	kind, name, _ := strings.Cut(ch, ":")
	want := "user:<UserID> or group:<GroupId>"
	if app {
		want = "app, " + want
	}
	switch {
	case ch == "app" && app:
		return ""
	case ch == "":
		return "channel is required: " + want
	case len(ch) > maxName:
		return fmt.Sprintf("channel is longer than %d bytes", maxName)
	case ch == "app":
		return `channel "app" is the firehose: every published event reaches it; publish to ` + want
	case (kind != "user" && kind != "group") || name == "":
		return "channel " + clip(ch) + " is not " + want
	}
	return ""
}

type userRequest struct {
	App          string `json:"app"`
	User         string `json:"user"`
	IssuedBefore *int64 `json:"issued_before"`
}

// checkUser says what is wrong with a user id, "" when nothing.
func checkUser(user string) string {
	switch {
	case user == "":
		return "user is required"
	case len(user) > maxName:
		return fmt.Sprintf("user is longer than %d bytes", maxName)
	}
	return ""
}

// userTarget reads a request that acts on one user of the key's app, and
// answers it itself when the body, the app or the user is not valid.
func (h *Handler) userTarget(q *request) (req userRequest, app string, ok bool) {
	if !h.decode(q, &req) {
		return req, "", false
	}
	if app, ok = h.app(q, req.App); !ok {
		return req, "", false
	}
	if msg := checkUser(req.User); msg != "" {
		fail(q.w, http.StatusBadRequest, msg)
		return req, "", false
	}
	return req, app, true
}

func (h *Handler) disconnect(q *request) {
	req, app, ok := h.userTarget(q)
	if !ok {
		return
	}
	if req.IssuedBefore != nil {
		fail(q.w, http.StatusBadRequest, "issued_before is for /api/revoke")
		return
	}
	n, err := h.cfg.Presence.Connections(q.ctx, app, req.User)
	if err != nil {
		h.cfg.Logger.Warn("api disconnect: presence failed", "app", app, "err", err)
		fail(q.w, http.StatusServiceUnavailable, "sessions could not be counted now: nothing was done; try again")
		return
	}
	if err := h.cfg.Bus.Publish(q.ctx, control.Command{Op: control.OpDisconnect, App: app, User: req.User}); err != nil {
		h.cfg.Logger.Warn("api disconnect failed", "app", app, "err", err)
		fail(q.w, http.StatusServiceUnavailable, "the nodes could not be told now: try again")
		return
	}
	answer(q.w, map[string]int{"sessions": n})
}

func (h *Handler) revoke(q *request) {
	req, app, ok := h.userTarget(q)
	if !ok {
		return
	}
	if req.IssuedBefore == nil {
		fail(q.w, http.StatusBadRequest, "issued_before is required: unix seconds; tokens issued before it are refused")
		return
	}
	if msg := h.checkIssuedBefore(*req.IssuedBefore); msg != "" {
		fail(q.w, http.StatusBadRequest, msg)
		return
	}
	before := time.Unix(*req.IssuedBefore, 0)
	if err := h.cfg.Revocations.Store(q.ctx, app, req.User, before); err != nil {
		h.cfg.Logger.Warn("api revoke: store failed", "app", app, "err", err)
		fail(q.w, http.StatusServiceUnavailable, "the revocation could not be stored now: try again")
		return
	}
	n, err := h.cfg.Bus.Gather(q.ctx, control.Command{Op: control.OpRevoke, App: app, User: req.User, Before: before.Unix()})
	if err != nil {
		h.cfg.Logger.Warn("api revoke failed", "app", app, "err", err)
		fail(q.w, http.StatusServiceUnavailable, "the revocation is stored, but the nodes could not be told to close sessions now: try again")
		return
	}
	answer(q.w, map[string]int{"sessions": n})
}

// checkIssuedBefore says what is wrong with a revocation's issued_before,
// "" when nothing: it must be unix seconds after 1970 and at most Skew
// ahead of this hub's clock. It is compared as a number, never made a
// time.Time first: time.Unix of a value near the int64 limit wraps round
// to a time long past, which would pass for a revocation of nothing.
func (h *Handler) checkIssuedBefore(sec int64) string {
	latest := h.cfg.Now().Add(h.cfg.Skew).Unix()
	switch {
	case sec <= 0:
		return "issued_before must be unix seconds, greater than zero"
	case sec > latest:
		msg := fmt.Sprintf("issued_before %d is in the future (more than %v ahead of this hub's clock): "+
			"it would refuse tokens not issued yet", sec, h.cfg.Skew)
		if sec/1000 <= latest {
			msg += "; it is unix seconds, and this looks like milliseconds"
		}
		return msg
	}
	return ""
}

// presenceQuery is the query /api/presence takes.
var presenceQuery = keySet{"app", "channel", "user"}

func (h *Handler) presence(q *request) {
	// URL.Query drops a pair it cannot decode, which a proxy in front may
	// still read as a value: such a query is refused whole.
	v, err := url.ParseQuery(q.r.URL.RawQuery)
	if err != nil {
		fail(q.w, http.StatusBadRequest, "the query does not decode: escape % as %25 and do not use ;")
		return
	}
	if msg := presenceQuery.checkQuery(v); msg != "" {
		fail(q.w, http.StatusBadRequest, msg)
		return
	}
	app, ok := h.app(q, v.Get("app"))
	if !ok {
		return
	}
	channel, user := v.Get("channel"), v.Get("user")
	switch {
	case (channel == "") == (user == ""):
		fail(q.w, http.StatusBadRequest, "give channel= or user=, one of them")
	case user != "":
		if msg := checkUser(user); msg != "" {
			fail(q.w, http.StatusBadRequest, msg)
			return
		}
		n, err := h.cfg.Presence.Connections(q.ctx, app, user)
		if err != nil {
			h.cfg.Logger.Warn("api presence failed", "app", app, "err", err)
			fail(q.w, http.StatusServiceUnavailable, "presence could not be read now: try again")
			return
		}
		answer(q.w, map[string]any{"online": n > 0, "connections": n})
	default:
		if msg := checkChannel(channel, true); msg != "" {
			fail(q.w, http.StatusBadRequest, msg)
			return
		}
		users, err := h.cfg.Presence.Users(q.ctx, app, channel)
		if err != nil {
			h.cfg.Logger.Warn("api presence failed", "app", app, "err", err)
			fail(q.w, http.StatusServiceUnavailable, "presence could not be read now: try again")
			return
		}
		answer(q.w, map[string]any{"users": users})
	}
}

func answer(w http.ResponseWriter, v any) { write(w, http.StatusOK, v) }

func fail(w http.ResponseWriter, status int, msg string) {
	write(w, status, map[string]string{"error": msg})
}

func write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages quote <UserID>
	_ = enc.Encode(v)
}

// clip bounds a caller's value echoed in an answer.
func clip(s string) string { return textclip.Cut(s, 64) }
