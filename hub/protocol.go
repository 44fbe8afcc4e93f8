package hub

import (
	"encoding/json"
	"strconv"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/hub/broker"
)

// Close codes the hub ends a connection with.
const (
	CloseInvalidToken websocket.StatusCode = 4001
	CloseTokenExpired websocket.StatusCode = 4002
	CloseTooSlow      websocket.StatusCode = 4008
	CloseTooManyConns websocket.StatusCode = 4009
	CloseInvalidUTF8                       = websocket.StatusInvalidFramePayloadData // 1007
	CloseMalformed                         = websocket.StatusPolicyViolation         // 1008
	CloseTooLarge                          = websocket.StatusMessageTooBig           // 1009
	CloseShuttingDown                      = websocket.StatusServiceRestart          // 1012
	// CloseTryAgainLater: the node cannot check the token now (its
	// revocations cannot be read and RefuseUnchecked is set).
	CloseTryAgainLater = websocket.StatusTryAgainLater // 1013
	closeNormal        = websocket.StatusNormalClosure
)

// Error codes of an "error" frame.
const (
	CodeBadRequest     = "bad_request"
	CodeForbidden      = "forbidden"
	CodeUnknownChannel = "unknown_channel"
	CodeTooManySubs    = "too_many_subscriptions"
	// CodeRateLimited: the client sends frames faster than the hub takes
	// them; the frame was not carried out.
	CodeRateLimited = "rate_limited"
	// CodeUnavailable: the broker could not be reached; try again.
	CodeUnavailable = "unavailable"
)

// clientFrame is any frame a client sends.
type clientFrame struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	Since   *string         `json:"since"`
	Token   string          `json:"token"`
	UserSig string          `json:"usersig"`
	ID      json.RawMessage `json:"id"`
}

// serverFrame is every frame but "event", which is built by eventFrame.
type serverFrame struct {
	Op        string          `json:"op"`
	User      string          `json:"user,omitempty"`
	App       string          `json:"app,omitempty"`
	Node      string          `json:"node,omitempty"`
	Channels  []string        `json:"channels,omitempty"`
	Channel   string          `json:"channel,omitempty"`
	Offset    string          `json:"offset,omitempty"`
	Recovered *bool           `json:"recovered,omitempty"`
	Code      string          `json:"code,omitempty"`
	Message   string          `json:"message,omitempty"`
	Expires   int64           `json:"expires,omitempty"`
	Reason    string          `json:"reason,omitempty"`
	ID        json.RawMessage `json:"id,omitempty"`
}

// Reasons an unsubscribed frame carries when the hub ended the
// subscription itself (docs/protocol.md#frames): the client must not
// subscribe again on its own.
const (
	// ReasonRemoved: the IM says the user left the group, or is not in it.
	ReasonRemoved = "removed"
	// ReasonDestroyed: the group was disbanded.
	ReasonDestroyed = "destroyed"
)

// unsubscribedFrame tells the client the hub ended its subscription of
// channel, for reason.
func unsubscribedFrame(channel, reason string) []byte {
	return serverFrame{Op: "unsubscribed", Channel: channel, Reason: reason}.encode()
}

// presenceFrame answers a presence op. Users is always present, {} for a
// channel nobody is subscribed to.
type presenceFrame struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	Users   map[string]int  `json:"users"`
	ID      json.RawMessage `json:"id,omitempty"`
}

// subscribedFrame answers a subscribe of channel, or says again, with
// recovered false, that its stream goes on from another place than the
// one the client stands at: the stream stands at at. recovered, when set,
// says whether what came since the client's position was sent.
func subscribedFrame(channel string, at broker.Position, recovered *bool, id json.RawMessage) serverFrame {
	return serverFrame{Op: "subscribed", Channel: channel, Offset: at.String(), Recovered: recovered, ID: id}
}

func (f serverFrame) encode() []byte {
	b, err := json.Marshal(f)
	if err != nil {
		// Only the echoed id comes from a client, and it is checked by
		// validID; should one slip through, answer without it.
		f.ID = nil
		b, _ = json.Marshal(f)
	}
	return b
}

// eventFrame builds the frame of one publication. It is built once per
// publication and its bytes shared by every session of the channel.
func eventFrame(p broker.Publication) []byte {
	ch, _ := json.Marshal(p.Channel)
	b := make([]byte, 0, len(p.Data)+len(ch)+len(p.Epoch)+len(p.Tag)+64)
	b = append(b, `{"op":"event","channel":`...)
	b = append(b, ch...)
	b = append(b, `,"offset":"`...)
	b = strconv.AppendUint(b, p.Offset, 10)
	b = append(b, ':')
	b = append(b, p.Epoch...)
	if p.Tag != "" {
		b = append(b, ':')
		b = append(b, p.Tag...)
	}
	b = append(b, `","event":`...)
	b = append(b, p.Data...)
	b = append(b, '}')
	return b
}

// maxIDLen bounds a client's frame id, as JSON: the hub echoes it in every
// answer, and an id of kilobytes would have it repeat them. An id cannot be
// clipped like other echoed values without becoming another id.
const maxIDLen = 64

// validID reports whether a client's frame id is one the hub echoes: a
// number or a string, at most maxIDLen bytes as JSON.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return true
	}
	if len(id) > maxIDLen {
		return false
	}
	var v any
	if json.Unmarshal(id, &v) != nil {
		return false
	}
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

// maxEcho bounds a client's value quoted in an error message or a log line.
const maxEcho = 64
