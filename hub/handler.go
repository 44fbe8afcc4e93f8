package hub

import (
	"context"
	"net/http"
	"strings"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/auth"
)

// ServeHTTP serves GET /ws: it upgrades the request, authenticates the
// token, and runs the session until it ends. Refusals that a browser must
// be able to read (bad token, too many connections, shutting down) are
// made after the upgrade, as close codes.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	opts := &websocket.AcceptOptions{OriginPatterns: h.cfg.AllowedOrigins}
	if h.cfg.Compression {
		// No context takeover: a few KiB per connection instead of a
		// compressor window per connection.
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	}
	hj := &hijacker{ResponseWriter: w, timeout: h.cfg.WriteTimeout}
	conn, err := websocket.Accept(hj, r, opts)
	if err != nil {
		// Accept has answered (bad handshake or a foreign Origin).
		h.log.Debug("websocket handshake refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	conn.SetReadLimit(h.cfg.MaxFrame)
	// Accept has set the response headers it sent: without an agreed
	// extension, frames are plain and the session writes them itself.
	hj.conn.plain = w.Header().Get("Sec-WebSocket-Extensions") == ""

	n := h.conns.Add(1)
	counted := true
	defer func() {
		if counted {
			h.conns.Add(-1)
		}
	}()
	switch {
	case h.draining.Load():
		h.refuse(conn, CloseShuttingDown, "node shutting down, reconnect")
		return
	case n > int64(h.cfg.MaxConns):
		h.refuse(conn, CloseTooManyConns, "too many connections on this node")
		return
	}
	id, err := h.auth.Verify(token(r))
	if err != nil {
		h.m.authFailures.WithLabelValues(reasonOf(err)).Inc()
		code := CloseInvalidToken
		if auth.Expired(err) {
			code = CloseTokenExpired
		}
		h.refuse(conn, code, err.Error())
		return
	}

	s := newSession(h, conn, hj.conn, id)
	h.sessMu.Lock()
	if h.draining.Load() {
		h.sessMu.Unlock()
		h.refuse(conn, CloseShuttingDown, "node shutting down, reconnect")
		return
	}
	h.sessions[s] = struct{}{}
	h.wg.Add(1)
	h.sessMu.Unlock()
	h.m.connections.Inc()
	counted = false // the session's goroutine gives the connection back
	// The session runs on a goroutine of its own, owned by the hub (Drain
	// ends it, h.wg waits for it): returning frees the HTTP request and
	// the deep stack of the server's connection goroutine.
	go func() {
		defer func() {
			h.sessMu.Lock()
			delete(h.sessions, s)
			h.sessMu.Unlock()
			h.m.connections.Dec()
			h.conns.Add(-1)
			h.wg.Done()
		}()
		s.run(context.Background())
	}()
}

func (h *Hub) refuse(conn *websocket.Conn, code websocket.StatusCode, reason string) {
	h.m.closed(code)
	if len(reason) > 120 {
		reason = reason[:120] // a close reason is at most 123 bytes
	}
	_ = conn.Close(code, reason)
}

// token is the bearer token of the Authorization header, else the token
// query parameter (browsers cannot set headers on a WebSocket).
func token(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return r.URL.Query().Get("token")
}
