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

	if sess, run := h.startSession(r, tr, nil); run != nil {
		s = sess // before run: the pings it reads come after
		// The session runs on a goroutine of its own, owned by the hub
		// (Drain ends it, h.wg waits for it): returning frees the HTTP
		// request and the deep stack of the server's connection
		// goroutine.
		go run()
	}
}

// startSession admits the client of r, whose connection tr is, and makes
// its session: the credential is verified, the client counted against
// MaxConns and MaxConnsPerIP, plan (when set) asked what the session opens
// with, and its token checked against revocations. It returns
// the session and its run, which serves it until it ends and then takes it out
// of the hub; the caller calls it, on a goroutine of its own or not. A
// client that is not admitted has been told (tr.refuse) and gets nils.
//
// plan sees the verified identity; it answers the client itself and
// returns false when the request asks for what it may not have. Without a
// plan the session opens as a WebSocket one does: connected, then its
// user channel.
func (h *Hub) startSession(r *http.Request, tr transport, plan func(*auth.Identity) ([]clientFrame, bool)) (s *Session, run func()) {
	if h.draining.Load() {
		h.refuse(tr, CloseShuttingDown, "node shutting down, reconnect")
		return nil, nil
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
		return nil, nil
	}
	if n := h.conns.Add(1); n > int64(h.cfg.MaxConns) {
		h.conns.Add(-1)
		h.refuse(tr, CloseTooManyConns, "too many connections on this node")
		return nil, nil
	}
	addr := clientaddr.FromRequest(r)
	if !h.perAddr.acquire(addr) {
		h.conns.Add(-1)
		// Logged before the client hears of it, rate-limited per address.
		h.refusals.refused(addrKey(addr))
		h.refuse(tr, CloseTooManyConns, "too many connections from this address")
		return nil, nil
	}
	release := func() {
		h.perAddr.release(addr)
		h.conns.Add(-1)
	}
	// The plan is made within the limits: it may ask the IM, which a
	// crowd refused for its number must not make the hub do.
	var opening []clientFrame
	if plan != nil {
		var ok bool
		if opening, ok = plan(id); !ok {
			release()
			return nil, nil
		}
	}

	h.sessMu.Lock()
	if h.draining.Load() {
		h.sessMu.Unlock()
		release()
		h.refuse(tr, CloseShuttingDown, "node shutting down, reconnect")
		return nil, nil
	}
	// Made only once it is sure to run: a session starts its expiry and
	// ping timers, which only its run stops.
	s = newSession(h, tr, id)
	s.opening = opening
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
		return nil, nil
	case TokenUnchecked:
		if h.cfg.RefuseUnchecked {
			h.unadmit(s, release)
			h.m.unchecked.WithLabelValues("refused").Inc()
			h.refuse(tr, CloseTryAgainLater, "revocations cannot be checked now: try again later")
			h.wg.Done()
			return nil, nil
		}
		h.admitUnchecked(s, id)
	}
	h.m.connections.Inc()
	h.cfg.Presence.Connect(s.app, s.user)
	return s, func() {
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
	}
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
