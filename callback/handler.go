package callback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/imhub/imhub/hub/broker"
)

// Publisher is where accepted events go: a broker, or something in front
// of one such as a spool.
type Publisher interface {
	Publish(ctx context.Context, m broker.Message) (broker.Result, error)
}

// App is one IM application the hub accepts callbacks for.
type App struct {
	// ID is the SdkAppid.
	ID string
	// Token is the callback token configured in the IM console. When set,
	// every callback must carry a valid Sign and RequestTime.
	Token string
}

// Config configures a [Handler]. The zero value of each field but Apps is
// usable.
type Config struct {
	Apps []App
	// MaxBody is the largest body accepted; default 1 MiB.
	MaxBody int64
	// PublishTimeout bounds one publish; default 5s. A callback that
	// cannot be published in time is answered 503 and retried by the IM.
	PublishTimeout time.Duration
	Logger         *slog.Logger
	// Metrics, when set, counts callbacks.
	Metrics *Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Forward, when set, passes accepted callbacks on to apps' own
	// backends (docs/protocol.md#forwarding).
	Forward Forwarder
}

// Forwarder passes accepted callbacks on to an app's own backend; package
// callback/forward has the one the hub uses.
type Forwarder interface {
	// Answers reports whether the forwarder answers app's command itself,
	// synchronously: one the IM waits on a verdict for.
	Answers(app, command string) bool
	// Answer proxies such a callback and writes the IM's answer.
	Answer(w http.ResponseWriter, r *http.Request, app string, body []byte)
	// Enqueue queues any other accepted callback for delivery. An error
	// means it was not made durable, and the IM is answered 503.
	Enqueue(ctx context.Context, r *http.Request, app string, body []byte) error
}

// Handler serves the IM callback endpoint.
type Handler struct {
	cfg  Config
	apps map[string]App
	pub  Publisher
	log  *slog.Logger
}

// DefaultConfig returns the settings NewHandler gives the zero fields of
// a Config that have a default: a 1 MiB body, a 5s publish.
func DefaultConfig() Config {
	return Config{MaxBody: 1 << 20, PublishTimeout: 5 * time.Second}
}

// NewHandler returns a handler that publishes accepted events to pub.
func NewHandler(cfg Config, pub Publisher) *Handler {
	d := DefaultConfig()
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = d.MaxBody
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = d.PublishTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	apps := make(map[string]App, len(cfg.Apps))
	for _, a := range cfg.Apps {
		apps[a.ID] = a
	}
	return &Handler{cfg: cfg, apps: apps, pub: pub, log: cfg.Logger}
}

var (
	okBody = []byte(`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)
	// The answer's header values, shared by every answer: net/http only
	// reads them, and setting them through Header.Set cost two allocations
	// and a canonicalization each time.
	jsonType = []string{"application/json"}
	okLength = []string{strconv.Itoa(len(okBody))}
)

// ServeHTTP implements http.Handler. The first check that fails answers;
// nothing is published for a rejected request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := readQuery(r.URL.RawQuery)
	req := Request{
		App:      q.app,
		Command:  q.command,
		ClientIP: q.clientIP,
		Platform: q.platform,
		Received: h.cfg.Now(),
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, req, http.StatusMethodNotAllowed, ResultBadMethod, "method must be POST")
		return
	}
	app, ok := h.apps[req.App]
	if !ok {
		h.reject(w, r, req, http.StatusForbidden, ResultUnknownApp, "SdkAppid is not an app of this hub")
		return
	}
	if app.Token != "" {
		if err := VerifySign(app.Token, q.requestTime, q.sign, req.Received); err != nil {
			h.reject(w, r, req, http.StatusUnauthorized, ResultUnauthorized, err.Error())
			return
		}
	}
	body, err := h.readBody(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.reject(w, r, req, http.StatusRequestEntityTooLarge, ResultTooLarge,
				fmt.Sprintf("body is larger than %d bytes", h.cfg.MaxBody))
		} else {
			h.reject(w, r, req, http.StatusBadRequest, ResultBadRequest, "reading body: "+err.Error())
		}
		return
	}
	if req.Command == "" {
		h.reject(w, r, req, http.StatusBadRequest, ResultBadRequest, "CallbackCommand query parameter is required")
		return
	}
	ev, channels, repaired, err := parseRepairing(req, body)
	if repaired {
		h.cfg.Metrics.countInvalidUTF8(req.Command)
		h.log.Debug("callback text is not valid UTF-8: each bad byte replaced by U+FFFD",
			"app", clip(req.App), "command", clip(req.Command))
	}
	switch {
	case errors.Is(err, ErrUnknownCommand):
		if h.cfg.Forward != nil && h.cfg.Forward.Answers(req.App, req.Command) {
			h.cfg.Metrics.count(req.Command, ResultForwarded)
			h.cfg.Forward.Answer(w, r, req.App, body)
			return
		}
		if !h.forward(w, r, req, body) {
			return
		}
		h.cfg.Metrics.count(req.Command, ResultIgnored)
		h.log.Debug("callback ignored: command is not published", "app", clip(req.App), "command", clip(req.Command))
		writeOK(w)
		return
	case err != nil:
		h.reject(w, r, req, http.StatusBadRequest, ResultBadRequest, err.Error())
		return
	}
	data, err := ev.Encode()
	if err != nil {
		// Every field was decoded from valid JSON, so this is a bug, not
		// bad input; the IM will retry.
		h.fail(w, req, fmt.Errorf("encode event: %w", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	start := time.Now()
	res, err := h.pub.Publish(ctx, broker.Message{App: req.App, ID: ev.ID, Channels: channels, Data: data})
	h.cfg.Metrics.observePublish(time.Since(start).Seconds())
	if err != nil {
		h.fail(w, req, err)
		return
	}
	if !h.forward(w, r, req, body) {
		return
	}
	switch {
	case res.Duplicate:
		h.cfg.Metrics.count(req.Command, ResultDuplicate)
		h.log.Debug("callback is a repeat, not published again", "app", req.App, "id", ev.ID, "type", ev.Type)
	case res.Spooled:
		h.cfg.Metrics.count(req.Command, ResultSpooled)
		h.log.Debug("event spooled until the broker is back", "app", req.App, "id", ev.ID, "type", ev.Type)
	default:
		h.cfg.Metrics.count(req.Command, ResultPublished)
		if h.log.Enabled(r.Context(), slog.LevelDebug) {
			// A join or a leave goes to each member's channel: a thousand of
			// them would make a line of hundreds of kilobytes.
			placed := make([]string, len(channels))
			for i, c := range channels {
				placed[i] = c
				if i < len(res.Positions) {
					placed[i] += "@" + res.Positions[i].String()
				}
			}
			h.log.Debug("event published", "app", req.App, "id", ev.ID, "type", ev.Type,
				"channels", clipTo(strings.Join(placed, " "), maxLoggedChannels), "event", clipTo(string(data), maxLoggedEvent))
		}
	}
	writeOK(w)
}

// forward queues an accepted callback for the app's own backend, if it
// has one, and answers 503 when that fails. Repeats are forwarded too: the
// backend would have had them from the IM without the hub.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, req Request, body []byte) bool {
	if h.cfg.Forward == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	if err := h.cfg.Forward.Enqueue(ctx, r, req.App, body); err != nil {
		h.fail(w, req, err)
		return false
	}
	return true
}

func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > h.cfg.MaxBody {
		return nil, &http.MaxBytesError{Limit: h.cfg.MaxBody}
	}
	// How long a slow sender may take is the server's ReadTimeout: it also
	// bounds the bodies that no handler reads.
	return io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
}

// reject answers a callback that failed a check. Values taken from the
// request are quoted through clip, here and in the reasons, because the
// checks run before anything about the caller is known.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, req Request, status int, result, reason string) {
	h.cfg.Metrics.count(req.Command, result)
	h.log.Info("callback rejected", "status", status, "reason", clipTo(reason, maxReason), "app", clip(req.App),
		"command", clip(req.Command), "remote", clip(r.RemoteAddr))
	writeFail(w, status, reason)
}

func (h *Handler) fail(w http.ResponseWriter, req Request, err error) {
	h.cfg.Metrics.count(req.Command, ResultUnavailable)
	h.log.Warn("callback not published, answered 503 so the IM retries", "app", clip(req.App),
		"command", clip(req.Command), "err", err)
	writeFail(w, http.StatusServiceUnavailable, "event could not be stored, retry later")
}

func writeOK(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = okLength
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}

// failResponse is the IM's response shape for a rejection.
type failResponse struct {
	ActionStatus string
	ErrorInfo    string
	ErrorCode    int
}

// writeFail answers a rejection. The reason is clipped to maxReason bytes:
// whatever quotes a request in it, the answer stays small.
func writeFail(w http.ResponseWriter, status int, reason string) {
	b, _ := json.Marshal(failResponse{ActionStatus: "FAIL", ErrorInfo: clipTo(reason, maxReason), ErrorCode: 1})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
