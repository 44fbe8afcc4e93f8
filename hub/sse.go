package hub

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/textclip"
)

// MaxStreamChannels is the most channels one SSE stream may name.
const MaxStreamChannels = 32

// ServeSSE serves GET /sse?channel=…: a Server-Sent Events stream of the
// channels named, for clients that cannot or need not speak WebSocket
// (docs/protocol.md#server-sent-events). It is a session like a
// WebSocket's, with the same credentials, permissions, limits, replay,
// repair and removal; only its transport (sseConn) differs.
//
// What a WebSocket learns from close codes after the upgrade, a stream
// learns before it starts, from the status: 401 a missing or refused
// credential, 403 a channel the credential does not grant or a group the
// IM says the user is not in, 400 a request the hub cannot read, 405
// another method, 503 a node over its limits or shutting down, or an IM
// that cannot say. Once the stream runs, it ends as a WebSocket would close,
// with an error message naming the close code.
//
// On HTTP/1.x the hub takes the connection over and the handler returns
// once the stream is open; elsewhere it returns when the stream ends.
func (h *Hub) ServeSSE(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "an event stream is read with GET", http.StatusMethodNotAllowed)
		return
	}
	// A page may read a stream where it may open a WebSocket: from the
	// hub's own host, or one -allowed-origins names.
	if err := h.origins.check(r); err != nil {
		if he, ok := errors.AsType[*handshakeError](err); ok {
			he.answer(w)
		} else {
			http.Error(w, "this page's origin may not read streams here", http.StatusForbidden)
		}
		return
	}
	if o := r.Header.Get("Origin"); o != "" {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Add("Vary", "Origin")
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "the query does not decode", http.StatusBadRequest)
		return
	}
	channels, msg := streamChannels(q["channel"], min(MaxStreamChannels, h.cfg.MaxSubs))
	if msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	cursor := newStreamCursor(channels)
	// The browser's reconnect sends the last id it saw; the URL it
	// reconnects to still has the since the stream was opened with, which
	// is older.
	from := r.Header.Get("Last-Event-ID")
	if from == "" && len(q["since"]) > 1 {
		http.Error(w, "give since once", http.StatusBadRequest)
		return
	}
	if from == "" {
		from = q.Get("since")
	}
	if from != "" {
		if err := cursor.read(from); err != nil {
			http.Error(w, "last event id or since: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	// The positions the stream opens at are its subscribes' since: the
	// cursor moves once the stream runs.
	opening := make([]clientFrame, len(channels))
	for i, ch := range channels {
		opening[i] = clientFrame{Op: "subscribe", Channel: ch}
		if p := cursor.position(ch); p != "" {
			opening[i].Since = &p
		}
	}
	tr := newSSEConn(w, r, cursor, h.cfg.WriteTimeout)
	plan := func(id *auth.Identity) ([]clientFrame, bool) {
		for _, ch := range channels {
			if code, msg := authorize(id, ch, h.governs(id.App)); code != "" {
				status := http.StatusBadRequest
				if code == CodeForbidden {
					status = http.StatusForbidden
				}
				http.Error(w, textclip.Cut(ch, maxEcho)+": "+msg, status)
				return nil, false
			}
		}
		if !h.admitStreamMember(w, r, id, channels) {
			return nil, false
		}
		return opening, true
	}
	_, run := h.startSession(r, tr, plan)
	if run == nil {
		return
	}
	if f := h.streamAdmitted.Load(); f != nil {
		(*f)()
	}
	if err := tr.open(); err != nil {
		// The session finds the stream gone at its first write.
		h.log.Debug("sse stream could not start", "remote", r.RemoteAddr, "err", err)
	}
	if tr.takenOver() {
		// The session runs on a goroutine of its own, owned by the hub
		// (Drain ends it, h.wg waits for it), as a WebSocket's does:
		// returning frees the request and the server's connection
		// goroutine.
		go run()
		return
	}
	run()
}

// admitStreamMember asks the IM, for each group of channels its
// membership governs, whether id's user is a member, before the stream
// starts: a consumer learns from the status that it may not read a group
// (403), or that the IM cannot say now (503), as it learns of the other
// refusals, and EventSource does not reconnect to a group it is refused.
// It answers w and reports false if one is refused. The stream's
// subscribes ask again, from the answers kept; a member removed later is
// unsubscribed in the stream.
func (h *Hub) admitStreamMember(w http.ResponseWriter, r *http.Request, id *auth.Identity, channels []string) bool {
	// One deadline for them all: a stream of many groups waits for a
	// slow IM no longer than a subscribe does.
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.BrokerTimeout)
	defer cancel()
	for _, ch := range channels {
		group, ok := h.memberGroup(id, ch)
		if !ok {
			continue
		}
		switch code, msg := h.admitMember(ctx, id.App, id.User, group); code {
		case "":
		case CodeForbidden:
			http.Error(w, textclip.Cut(ch, maxEcho)+": "+msg, http.StatusForbidden)
			return false
		default:
			// Longer than the membership's pause after a failed ask
			// of a group (membership.DefaultRetryAfter), within which
			// the IM is not asked again.
			w.Header().Set("Retry-After", "5")
			http.Error(w, textclip.Cut(ch, maxEcho)+": the IM cannot be asked about this group now; try again", http.StatusServiceUnavailable)
			return false
		}
	}
	return true
}

// streamChannels checks the channels a stream names: at least one, at
// most limit, none twice. It returns them, or what is wrong.
func streamChannels(names []string, limit int) ([]string, string) {
	switch {
	case len(names) == 0:
		return nil, "name at least one channel: ?channel=group:G1"
	case len(names) > limit:
		return nil, "a stream takes at most " + strconv.Itoa(limit) + " channels"
	}
	seen := make(map[string]bool, len(names))
	out := make([]string, len(names))
	for i, ch := range names {
		switch {
		case ch == "":
			return nil, "a channel name is empty"
		case seen[ch]:
			return nil, "channel " + textclip.Cut(ch, maxEcho) + " is named twice"
		}
		seen[ch] = true
		// A name decoded from the query may be a piece of the request
		// line, credential included: the stream keeps its names for its
		// life, and not the line with them.
		out[i] = strings.Clone(ch)
	}
	return out, ""
}
