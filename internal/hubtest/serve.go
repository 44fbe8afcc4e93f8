package hubtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/broker"
)

// Serve runs broker b with handler (the hub itself, or something in front
// of it) and serves h on /ws and /sse of a test server, all stopped when t ends:
// sessions drained, the server closed, the broker's Run returned. It
// returns the server.
func Serve(t testing.TB, h *hub.Hub, b broker.Broker, handler broker.Handler) *httptest.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx, handler); close(done) }()
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	mux.HandleFunc("/sse", h.ServeSSE)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer dcancel()
		h.Drain(dctx, 0)
		srv.Close()
		cancel()
		<-done
	})
	return srv
}
