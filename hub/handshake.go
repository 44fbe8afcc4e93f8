package hub

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strings"
	"time"
)

// wsVersion is the one version of the WebSocket protocol the hub speaks
// (RFC 6455, section 4.1).
const wsVersion = "13"

// handshakeError is an opening handshake the hub does not take, with the
// HTTP status it is answered with.
type handshakeError struct {
	status int
	reason string
}

func (e *handshakeError) Error() string { return e.reason }

func refuseHandshake(status int, format string, args ...any) *handshakeError {
	return &handshakeError{status: status, reason: fmt.Sprintf(format, args...)}
}

// answer writes the refusal: its status, the headers that status calls
// for, and the reason as the body.
func (e *handshakeError) answer(w http.ResponseWriter) {
	h := w.Header()
	switch e.status {
	case http.StatusUpgradeRequired:
		// A 426 names the protocol to upgrade to (RFC 9110, section
		// 15.5.22), and for WebSocket the versions of it the server
		// speaks (RFC 6455, section 4.4): a client learns from any 426
		// what would have been taken.
		h.Set("Upgrade", "websocket")
		h.Set("Connection", "Upgrade")
		h.Set("Sec-WebSocket-Version", wsVersion)
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodGet)
	}
	http.Error(w, e.reason, e.status)
}

// admitHandshake checks that r is an opening handshake the hub takes
// (readHandshake) from a page origins allows, and answers one that is not
// with its HTTP error.
func admitHandshake(w http.ResponseWriter, r *http.Request, origins *originPolicy) error {
	_, err := readHandshake(r)
	if err == nil {
		err = origins.check(r)
	}
	if he, ok := errors.AsType[*handshakeError](err); ok {
		he.answer(w)
	}
	return err
}

// readHandshake checks r against what RFC 6455, section 4.2.1, asks of a
// client's opening handshake, and returns its key. The first thing wrong
// decides the answer: 405 for a method other than GET, 426 for a request
// that is no upgrade to WebSocket (or one over HTTP/1.0, which has none)
// or asks for another version, 400 for a bad key. The checks follow the
// section's list, but for the version, which comes before the key: a
// client of an older draft, whose handshake has no key of this form,
// learns the version the hub speaks instead.
func readHandshake(r *http.Request) (key string, err error) {
	switch {
	case r.Method != http.MethodGet:
		return "", refuseHandshake(http.StatusMethodNotAllowed, "a WebSocket opens with a GET request, not %s", r.Method)
	case !r.ProtoAtLeast(1, 1):
		return "", refuseHandshake(http.StatusUpgradeRequired, "a WebSocket opens over HTTP/1.1 or later, not %s", r.Proto)
	case !listHas(r.Header, "Upgrade", "websocket"):
		return "", refuseHandshake(http.StatusUpgradeRequired, "not an upgrade to websocket: Upgrade is %q", r.Header.Get("Upgrade"))
	case !listHas(r.Header, "Connection", "Upgrade"):
		return "", refuseHandshake(http.StatusUpgradeRequired, "not an upgrade: Connection is %q", r.Header.Get("Connection"))
	}
	// Both headers may appear once only (RFC 6455, sections 11.3.1 and
	// 11.3.5).
	switch v := r.Header.Values("Sec-WebSocket-Version"); {
	case len(v) > 1:
		return "", refuseHandshake(http.StatusBadRequest, "Sec-WebSocket-Version sent %d times", len(v))
	case len(v) == 0:
		return "", refuseHandshake(http.StatusUpgradeRequired, "no Sec-WebSocket-Version: this hub speaks version %s", wsVersion)
	case v[0] != wsVersion:
		return "", refuseHandshake(http.StatusUpgradeRequired, "WebSocket version %q asked for: this hub speaks version %s", v[0], wsVersion)
	}
	switch k := r.Header.Values("Sec-WebSocket-Key"); {
	case len(k) == 0:
		return "", refuseHandshake(http.StatusBadRequest, "no Sec-WebSocket-Key")
	case len(k) > 1:
		return "", refuseHandshake(http.StatusBadRequest, "Sec-WebSocket-Key sent %d times", len(k))
	case !validKey(k[0]):
		return "", refuseHandshake(http.StatusBadRequest, "Sec-WebSocket-Key %q is not 16 bytes in base64", k[0])
	default:
		return k[0], nil
	}
}

// validKey says whether key is 16 bytes in base64, as a client's nonce
// must be: 24 characters, the last two padding. (The header's reader has
// already trimmed the spaces around it.)
func validKey(key string) bool {
	if len(key) != 24 || !strings.HasSuffix(key, "==") {
		return false
	}
	var nonce [18]byte
	n, err := base64.StdEncoding.Decode(nonce[:], []byte(key))
	return err == nil && n == 16
}

// offersDeflate says whether the client offers permessage-deflate (RFC
// 7692), whatever its parameters: the library decides whether to agree.
func offersDeflate(r *http.Request) bool {
	for ext := range listElements(r.Header, "Sec-WebSocket-Extensions") {
		name, _, _ := strings.Cut(ext, ";")
		if strings.TrimSpace(name) == "permessage-deflate" {
			return true
		}
	}
	return false
}

// listHas says whether the comma-separated list of header name holds
// token, in any case.
func listHas(h http.Header, name, token string) bool {
	for e := range listElements(h, name) {
		if strings.EqualFold(e, token) {
			return true
		}
	}
	return false
}

// listElements yields the elements of the comma-separated list that the
// lines of header name make together (RFC 9110, section 5.6.1), trimmed,
// skipping empty ones.
func listElements(h http.Header, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, line := range h.Values(name) {
			for e := range strings.SplitSeq(line, ",") {
				if e = strings.Trim(e, " \t"); e != "" && !yield(e) {
					return
				}
			}
		}
	}
}

// acceptPlain completes a checked handshake without extensions: it sends
// the 101 response and takes the socket from the HTTP server, with no
// buffers of its own. The bytes the client sent after its request (its
// first frames) are returned, to be read before the socket's.
func acceptPlain(w http.ResponseWriter, r *http.Request, timeout time.Duration) (*wsConn, []byte, error) {
	h := w.Header()
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", acceptKey(r.Header.Get("Sec-WebSocket-Key")))
	w.WriteHeader(http.StatusSwitchingProtocols)
	c, prefix, err := hijack(w)
	if err != nil {
		return nil, nil, err
	}
	return &wsConn{Conn: c, raw: c, timeout: timeout}, prefix, nil
}

// keyGUID is the GUID of RFC 6455, section 1.3.
const keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKey is the proof the server read key: the base64 of the SHA-1 of
// key and keyGUID (RFC 6455, section 1.3).
func acceptKey(key string) string {
	sum := sha1.Sum([]byte(key + keyGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}
