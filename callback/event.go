package callback

import (
	"bytes"
	"encoding/json"
)

// Event types, one per published command.
const (
	TypeGroupSent     = "group.message.sent"
	TypeGroupRecalled = "group.message.recalled"
	TypeC2CSent       = "c2c.message.sent"
	TypeC2CRecalled   = "c2c.message.recalled"
)

// Event is the normalized form of one IM callback, the payload clients
// receive. Empty fields are omitted from its JSON; times are unix
// milliseconds.
type Event struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	App       string `json:"app"`
	Time      int64  `json:"time"`
	GroupID   string `json:"group_id,omitempty"`
	GroupType string `json:"group_type,omitempty"`
	TopicID   string `json:"topic_id,omitempty"`
	From      string `json:"from,omitempty"`
	To        string `json:"to,omitempty"`
	Operator  string `json:"operator,omitempty"`
	// Messages identifies the messages the event is about: the one sent,
	// or every one recalled.
	Messages []MessageRef `json:"messages,omitempty"`
	// Body is the IM MsgBody, passed through as it is, except that text
	// that is not valid UTF-8 is repaired (see [Parse]). Encode does not
	// check it again: whoever sets Body keeps it valid UTF-8.
	Body            json.RawMessage `json:"body,omitempty"`
	CloudCustomData string          `json:"cloud_custom_data,omitempty"`
	OnlineOnly      bool            `json:"online_only,omitempty"`
	// Unread is the recipient's unread count when the IM gave one; zero is
	// a real count, so it is kept when given.
	Unread *int64 `json:"unread,omitempty"`
	// SendResult is the IM's non-zero SendMsgResult: the message was not
	// delivered, ErrorInfo says why.
	SendResult int64  `json:"send_result,omitempty"`
	ErrorInfo  string `json:"error_info,omitempty"`
	Platform   string `json:"platform,omitempty"`
	ClientIP   string `json:"client_ip,omitempty"`
	Command    string `json:"command"`
	Received   int64  `json:"received"`
}

// MessageRef names one IM message by whichever identities the IM gave.
type MessageRef struct {
	Seq    int64  `json:"seq,omitempty"`
	ID     string `json:"id,omitempty"`
	Key    string `json:"key,omitempty"`
	Random int64  `json:"random,omitempty"`
}

// Encode returns the event's JSON. Characters such as '<' are kept as they
// are rather than escaped, so message text reaches clients as it was sent.
func (e *Event) Encode() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
