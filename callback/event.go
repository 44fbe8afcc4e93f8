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

	TypeUserStatus        = "user.status"         // State.StateChange
	TypeGroupMemberJoined = "group.member.joined" // Group.CallbackAfterNewMemberJoin
	TypeGroupMemberLeft   = "group.member.left"   // Group.CallbackAfterMemberExit
	TypeC2CRead           = "c2c.message.read"    // C2C.CallbackAfterMsgReport
	TypeGroupRead         = "group.message.read"  // Group.CallbackAfterReadReceipt
	TypeGroupDestroyed    = "group.destroyed"     // Group.CallbackAfterGroupDestroyed
	TypeGroupInfoChanged  = "group.info.changed"  // Group.CallbackAfterGroupInfoChanged
)

// Values of Event.Status, from the IM's Info.Action.
const (
	StatusLogin      = "login"
	StatusLogout     = "logout"
	StatusDisconnect = "disconnect"
)

// Event is the normalized form of one IM callback, the payload clients
// receive. Empty fields are omitted from its JSON; times are unix
// milliseconds.
//
// Who is who, per type: From is the sender of a message, the user whose
// status changed (user.status) and the reader (c2c.message.read); To is the
// recipient of a message and the reader's peer; Operator is the
// Operator_Account of the IM (who recalled, who added or removed members,
// who changed the group's profile).
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
	// Unread is the unread count when the IM gave one (UnreadMsgNum): the
	// recipient's for a message, the reader's for c2c.message.read, over
	// all its one-to-one conversations. Zero is a real count, so it is kept
	// when given.
	Unread *int64 `json:"unread,omitempty"`
	// SendResult is the IM's non-zero SendMsgResult: the message was not
	// delivered, ErrorInfo says why.
	SendResult int64  `json:"send_result,omitempty"`
	ErrorInfo  string `json:"error_info,omitempty"`

	// Status is user.status's "login", "logout" or "disconnect" (the IM's
	// Info.Action, lower case); Reason is the IM's Info.Reason as it is
	// ("Register", "Unregister", "LinkClose", "TimeOut").
	Status string `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// KickedDevices are the user's other devices a login forced offline
	// (the IM's KickedDevice).
	KickedDevices []Device `json:"kicked_devices,omitempty"`

	// Members are the users who joined (NewMemberList) or left
	// (ExitMemberList) the group, each once, in the IM's order.
	Members []string `json:"members,omitempty"`
	// JoinType is the IM's JoinType as it is: "Apply" or "Invited".
	JoinType string `json:"join_type,omitempty"`
	// ExitType is the IM's ExitType as it is: "Kicked" or "Quit".
	ExitType string `json:"exit_type,omitempty"`

	// LastReadTime is c2c.message.read's LastReadTime: every message of
	// the conversation up to it is read. Unix milliseconds (the IM sends
	// seconds).
	LastReadTime int64 `json:"last_read_time,omitempty"`
	// Receipts are group.message.read's counts, one per message
	// (GroupMsgReceiptList).
	Receipts []Receipt `json:"receipts,omitempty"`
	// Changes is what group.info.changed changed: only the profile fields
	// the IM sent.
	Changes *GroupChanges `json:"changes,omitempty"`

	Platform string `json:"platform,omitempty"`
	ClientIP string `json:"client_ip,omitempty"`
	Command  string `json:"command"`
	Received int64  `json:"received"`
}

// Device is one device of a user.
type Device struct {
	// Platform is as the IM names it: "iOS" (the IM's State.StateChange
	// says "IOS"), "Android", "Web", "Windows", "iPad", "Mac", "Linux".
	Platform string `json:"platform"`
}

// Receipt is the read count of one group message. All three are always
// present: zero is a count.
type Receipt struct {
	Seq    int64 `json:"seq"`
	Read   int64 `json:"read"`
	Unread int64 `json:"unread"`
}

// GroupChanges are the group profile fields one change touched, each present
// only when the IM sent it; an empty string is a field that was cleared.
type GroupChanges struct {
	Name         *string `json:"name,omitempty"`
	Introduction *string `json:"introduction,omitempty"`
	Notification *string `json:"notification,omitempty"`
	FaceURL      *string `json:"face_url,omitempty"`
	// Custom are the group's custom fields that changed
	// (UserDefinedDataList), key to value.
	Custom map[string]string `json:"custom,omitempty"`
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
