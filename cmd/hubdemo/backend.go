package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/imhub/imhub/callback"
)

// backendConfig configures the stand-in for the app's own backend: the
// service an app already had at its IM callback URL, which the hub now
// forwards callbacks to.
type backendConfig struct {
	// App is the SdkAppid served; a callback for another is refused.
	App string
	// Token is the app's callback token; when set, Sign and RequestTime
	// are checked as the IM documents it.
	Token string
	// DenyEvery: one Group.CallbackBeforeSendMsg in this many is denied;
	// default 10.
	DenyEvery int64
	Log       *slog.Logger
	// Now is the clock the Sign check uses; default time.Now.
	Now func() time.Time
}

// backend answers the IM's callbacks as an app's backend would: it logs
// each one, allows most group messages and denies some, and acknowledges
// the rest. It is safe for concurrent use.
type backend struct {
	cfg     backendConfig
	befores atomic.Int64 // Group.CallbackBeforeSendMsg callbacks seen
}

func newBackend(cfg backendConfig) *backend {
	if cfg.DenyEvery <= 0 {
		cfg.DenyEvery = 10
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &backend{cfg: cfg}
}

// answer is the body every IM callback answer has. For
// Group.CallbackBeforeSendMsg the IM reads ErrorCode as the verdict: 0
// sends the message, 1 refuses it (the sender gets error 10016), 2
// discards it while telling the sender it was sent.
type answer struct {
	ActionStatus string `json:"ActionStatus"`
	ErrorInfo    string `json:"ErrorInfo"`
	ErrorCode    int    `json:"ErrorCode"`
}

// Verdicts of Group.CallbackBeforeSendMsg, as the IM documents them.
const (
	verdictAllow   = 0
	verdictDeny    = 1
	verdictDiscard = 2
)

const maxBackendBody = 1 << 20

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cmd := q.Get("CallbackCommand")
	fail := func(status int, format string, args ...any) {
		info := fmt.Sprintf(format, args...)
		b.cfg.Log.Warn("callback refused", "command", clipText(cmd), "status", status, "why", info)
		writeAnswer(w, status, answer{ActionStatus: "FAIL", ErrorInfo: info, ErrorCode: 1})
	}
	if r.Method != http.MethodPost {
		fail(http.StatusMethodNotAllowed, "callbacks are POSTed")
		return
	}
	if b.cfg.App != "" && q.Get("SdkAppid") != b.cfg.App {
		fail(http.StatusForbidden, "SdkAppid %q is not this app's", clipText(q.Get("SdkAppid")))
		return
	}
	if b.cfg.Token != "" {
		if err := callback.VerifySign(b.cfg.Token, q.Get("RequestTime"), q.Get("Sign"), b.cfg.Now()); err != nil {
			fail(http.StatusUnauthorized, "Sign: %v", err)
			return
		}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBackendBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(http.StatusRequestEntityTooLarge, "body over %d bytes", maxBackendBody)
			return
		}
		fail(http.StatusBadRequest, "read body: %v", err)
		return
	}
	body, err := decodeBody(raw)
	if err != nil {
		fail(http.StatusBadRequest, "body is not a JSON object: %v", err)
		return
	}
	summary := summarize(cmd, body)
	if cmd != cmdGroupBeforeSend {
		b.cfg.Log.Info("callback", "command", clipText(cmd), "summary", summary)
		writeAnswer(w, http.StatusOK, answer{ActionStatus: "OK"})
		return
	}
	if b.befores.Add(1)%b.cfg.DenyEvery == 0 {
		b.cfg.Log.Info("callback", "command", cmd, "summary", summary, "verdict", "deny")
		writeAnswer(w, http.StatusOK, answer{ActionStatus: "OK", ErrorCode: verdictDeny,
			ErrorInfo: fmt.Sprintf("demo: one message in %d is refused", b.cfg.DenyEvery)})
		return
	}
	b.cfg.Log.Info("callback", "command", cmd, "summary", summary, "verdict", "allow")
	writeAnswer(w, http.StatusOK, answer{ActionStatus: "OK", ErrorCode: verdictAllow})
}

func writeAnswer(w http.ResponseWriter, status int, a answer) {
	b, _ := json.Marshal(a)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// serveBackend runs the backend on addr until ctx is done.
func serveBackend(ctx context.Context, addr string, cfg backendConfig, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-backend %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           newBackend(cfg),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	url := "http://" + ln.Addr().String() + "/"
	if host, port, _ := net.SplitHostPort(ln.Addr().String()); host == "::" || host == "0.0.0.0" {
		url = "http://127.0.0.1:" + port + "/"
	}
	fmt.Fprintf(out, "hubdemo: the app's backend listens on %s\n"+
		"hubdemo: have the hub forward to it: -forward %s=%s\n", ln.Addr(), orDemoApp(cfg.App), url)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("-backend %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdown)
	<-errc // http.ErrServerClosed, now that Shutdown has begun
	if err != nil {
		return fmt.Errorf("-backend: shut down: %w", err)
	}
	return nil
}

func orDemoApp(app string) string {
	if app == "" {
		return "1400000000"
	}
	return app
}
