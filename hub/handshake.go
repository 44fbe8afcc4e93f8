package hub

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// checkHandshake checks a WebSocket opening handshake (RFC 6455, section
// 4.2.1) and its Origin, and answers one that fails with an HTTP error:
// 426 with the version the hub speaks for a request that is no upgrade or
// asks for another version, 405 for a method other than GET, 400 for a bad
// key, 403 for an Origin neither the request's host nor allowed by
// patterns. It is the WebSocket library's check (Accept), which the
// connections the library accepts pass through again.
func checkHandshake(w http.ResponseWriter, r *http.Request, patterns []string) error {
	code, err := checkUpgradeRequest(w, r)
	if err == nil {
		if err = checkOrigin(r, patterns); err != nil {
			code = http.StatusForbidden
			if errors.Is(err, path.ErrBadPattern) {
				// The hub's own configuration is wrong, not the client.
				err = fmt.Errorf("%w (check -allowed-origins)", err)
				http.Error(w, http.StatusText(code), code)
				return err
			}
		}
	}
	if err != nil {
		http.Error(w, err.Error(), code)
	}
	return err
}

func checkUpgradeRequest(w http.ResponseWriter, r *http.Request) (int, error) {
	upgrade := func() {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "websocket")
	}
	switch {
	case !r.ProtoAtLeast(1, 1):
		return http.StatusUpgradeRequired, fmt.Errorf("WebSocket protocol violation: handshake request must be at least HTTP/1.1: %q", r.Proto)
	case !headerHasToken(r.Header, "Connection", "Upgrade"):
		upgrade()
		return http.StatusUpgradeRequired, fmt.Errorf("WebSocket protocol violation: Connection header %q does not contain Upgrade", r.Header.Get("Connection"))
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		upgrade()
		return http.StatusUpgradeRequired, fmt.Errorf("WebSocket protocol violation: Upgrade header %q does not contain websocket", r.Header.Get("Upgrade"))
	case r.Method != http.MethodGet:
		return http.StatusMethodNotAllowed, fmt.Errorf("WebSocket protocol violation: handshake request method is not GET but %q", r.Method)
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		// RFC 6455, section 4.4: 426, naming the versions the server speaks.
		w.Header().Set("Sec-WebSocket-Version", "13")
		return http.StatusUpgradeRequired, fmt.Errorf("unsupported WebSocket protocol version (only 13 is supported): %q", r.Header.Get("Sec-WebSocket-Version"))
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	switch {
	case len(keys) == 0:
		return http.StatusBadRequest, errors.New("WebSocket protocol violation: missing Sec-WebSocket-Key")
	case len(keys) > 1:
		return http.StatusBadRequest, errors.New("WebSocket protocol violation: multiple Sec-WebSocket-Key headers")
	}
	key := strings.TrimSpace(keys[0])
	if v, err := base64.StdEncoding.DecodeString(key); err != nil || len(v) != 16 {
		return http.StatusBadRequest, fmt.Errorf("WebSocket protocol violation: invalid Sec-WebSocket-Key %q, must be a 16 byte base64 encoded string", key)
	}
	return 0, nil
}

// checkOrigin admits a request without Origin (not from a browser), one
// whose Origin's host is the request's, and one whose Origin matches one
// of patterns (path.Match, ignoring case; against the host, or against
// scheme://host for a pattern with a scheme), as the library does.
func checkOrigin(r *http.Request, patterns []string) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("failed to parse Origin header %q: %w", origin, err)
	}
	if strings.EqualFold(r.Host, u.Host) {
		return nil
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		ok, err := path.Match(strings.ToLower(p), strings.ToLower(target))
		if err != nil {
			return fmt.Errorf("failed to parse path pattern %q: %w", p, err)
		}
		if ok {
			return nil
		}
	}
	if u.Host == "" {
		return fmt.Errorf("request Origin %q is not a valid URL with a host", origin)
	}
	return fmt.Errorf("request Origin %q is not authorized for Host %q", u.Host, r.Host)
}

// offersDeflate says whether the client offers permessage-deflate.
func offersDeflate(r *http.Request) bool {
	for _, t := range headerTokens(r.Header, "Sec-WebSocket-Extensions") {
		name, _, _ := strings.Cut(t, ";")
		if strings.TrimSpace(name) == "permessage-deflate" {
			return true
		}
	}
	return false
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, t := range headerTokens(h, key) {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// headerTokens are the comma-separated values of the header key.
func headerTokens(h http.Header, key string) []string {
	var tokens []string
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			tokens = append(tokens, strings.TrimSpace(t))
		}
	}
	return tokens
}

// acceptPlain completes a checked handshake without extensions: it sends
// the 101 response and takes the socket from the HTTP server, with no
// buffers of its own. The bytes the client sent after its request (its
// first frames) are returned, to be read before the socket's.
func acceptPlain(w http.ResponseWriter, r *http.Request, timeout time.Duration) (*wsConn, []byte, error) {
	h := w.Header()
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", acceptKey(strings.TrimSpace(r.Header.Get("Sec-WebSocket-Key"))))
	w.WriteHeader(http.StatusSwitchingProtocols)
	c, prefix, err := hijack(w)
	if err != nil {
		return nil, nil, err
	}
	return &wsConn{Conn: c, raw: c, timeout: timeout}, prefix, nil
}

// keyGUID is the GUID of RFC 6455, section 1.3.
const keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + keyGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}
