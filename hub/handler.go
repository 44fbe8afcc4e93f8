package hub

import (
	"context"
	"net/http"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/clientaddr"
	"github.com/imhub/imhub/internal/textclip"
)

// ServeHTTP serves GET /ws: it upgrades the request, authenticates the
// token, and runs the session until it ends. Refusals that a browser must
// be able to read (bad token, too many connections, shutting down) are
// made after the upgrade, as close codes.
//
// A connection is counted against MaxConns and MaxConnsPerIP only once
// its token is valid, and a refused one is dropped at once (see
// wsConn.refuse): connections that are never admitted cannot lock valid
// clients out.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var s *Session // set before a frame is read
	// A ping is a frame like any other: it is answered with a pong,
	// unless the client is past its rate.
	onPing := func() bool { return s == nil || s.pinged() }
	if err := admitHandshake(w, r, h.origins); err != nil {
		// Answered. The error quotes the client's Origin and Host.
		h.log.Debug("websocket handshake refused", "remote", r.RemoteAddr, "err", textclip.Cut(err.Error(), 4*maxEcho))
		return
	}
	var tr transport
	if h.cfg.Compression && offersDeflate(r) {
		tr = h.acceptDeflate(w, r, onPing)
	} else {
		c, prefix, err := acceptPlain(w, r, h.cfg.WriteTimeout)
		if err != nil {
			h.log.Debug("websocket handshake failed", "remote", r.RemoteAddr, "err", err)
			return
		}
		tr = newPlainConn(c, c.raw, prefix, h.cfg.MaxFrame, onPing)
	}
	if tr == nil {
		return
	}

	if h.draining.Load() {
		h.refuse(tr, CloseShuttingDown, "node shutting down, reconnect")
		return
	}
	cred, err := credentialOf(r)
	var id *auth.Identity
	if err == nil {
		id, err = h.verify(cred)
	}
	if err != nil {
		code := CloseInvalidToken
		if auth.Expired(err) {
			code = CloseTokenExpired
		}
		h.refuse(tr, code, h.refused(cred, err, "connect"))
		return
	}
	if n := h.conns.Add(1); n > int64(h.cfg.MaxConns) {
		h.conns.Add(-1)
		h.refuse(tr, CloseTooManyConns, "too many connections on this node")
		return
	}
	addr := clientaddr.FromRequest(r)
	if !h.perAddr.acquire(addr) {
		h.conns.Add(-1)
		// Logged before the client hears of it, rate-limited per address.
		h.refusals.refused(addrKey(addr))
		h.refuse(tr, CloseTooManyConns, "too many connections from this address")
		return
	}
	release := func() {
		h.perAddr.release(addr)
		h.conns.Add(-1)
	}

	h.sessMu.Lock()
	if h.draining.Load() {
		h.sessMu.Unlock()
		release()
		h.refuse(tr, CloseShuttingDown, "node shutting down, reconnect")
		return
	}
	// Made only once it is sure to run: a session starts its expiry and
	// ping timers, which only its run stops.
	s = newSession(h, tr, id)
	h.sessions[s] = struct{}{}
	h.addUserLocked(s, userKey{s.app, s.user})
	h.wg.Add(1)
	h.sessMu.Unlock()
	// Asked once the session is in the index, so that a revocation taken
	// meanwhile either is seen here or finds the session to close.
	switch h.checkRevoked(r.Context(), id) {
	case TokenRevoked:
		h.unadmit(s, release)
		h.m.authFailures.WithLabelValues("revoked", cred.label()).Inc()
		h.refuse(tr, CloseInvalidToken, "token revoked")
		h.wg.Done()
		return
	case TokenUnchecked:
		if h.cfg.RefuseUnchecked {
			h.unadmit(s, release)
			h.m.unchecked.WithLabelValues("refused").Inc()
			h.refuse(tr, CloseTryAgainLater, "revocations cannot be checked now: try again later")
			h.wg.Done()
			return
		}
		h.admitUnchecked(s, id)
	}
	h.m.connections.Inc()
	h.cfg.Presence.Connect(s.app, s.user)
	// The session runs on a goroutine of its own, owned by the hub (Drain
	// ends it, h.wg waits for it): returning frees the HTTP request and
	// the deep stack of the server's connection goroutine.
	go func() {
		defer func() {
			h.sessMu.Lock()
			delete(h.sessions, s)
			h.removeUserLocked(s, userKey{s.app, s.user})
			h.forgetUncheckedLocked(s)
			h.sessMu.Unlock()
			h.sessionLeft()
			h.cfg.Presence.Disconnect(s.app, s.user)
			h.m.connections.Dec()
			release()
			h.wg.Done()
		}()
		s.run(context.Background())
	}()
}

// unadmit takes s, refused before it ran, out of the index again; the
// caller ends it in h.wg once it has told the client.
func (h *Hub) unadmit(s *Session, release func()) {
	h.sessMu.Lock()
	delete(h.sessions, s)
	h.removeUserLocked(s, userKey{s.app, s.user})
	h.sessMu.Unlock()
	h.sessionLeft()
	s.stopTimers()
	release()
}

// acceptDeflate has the WebSocket library accept a connection whose client
// offers permessage-deflate, and agree it; nil if the handshake failed.
func (h *Hub) acceptDeflate(w http.ResponseWriter, r *http.Request, onPing func() bool) transport {
	opts := &websocket.AcceptOptions{
		// The Origin was checked with the other connections'
		// (admitHandshake): one policy for both.
		InsecureSkipVerify: true,
		OnPingReceived:     func(context.Context, []byte) bool { return onPing() },
		// No context takeover: a few KiB per connection instead of a
		// compressor window per connection.
		CompressionMode: websocket.CompressionNoContextTakeover,
	}
	hj := &hijacker{ResponseWriter: w, timeout: h.cfg.WriteTimeout}
	conn, err := websocket.Accept(hj, r, opts)
	if err != nil {
		h.log.Debug("websocket handshake refused", "remote", r.RemoteAddr, "err", textclip.Cut(err.Error(), 4*maxEcho))
		return nil
	}
	conn.SetReadLimit(h.cfg.MaxFrame)
	return &libConn{c: conn, ws: hj.conn}
}

// refuse ends a connection that is not admitted with code, quickly.
func (h *Hub) refuse(tr transport, code websocket.StatusCode, reason string) {
	h.m.closed(code)
	// A close reason is at most 123 bytes, and UTF-8: 120 and "…".
	tr.refuse(code, textclip.Cut(reason, 120))
}
