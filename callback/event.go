package callback

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"
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

	TypeGroupModified     = "group.message.modified"  // Group.CallbackAfterModifyMsg
	TypeC2CModified       = "c2c.message.modified"    // C2C.CallbackAfterModifyMsg
	TypeGroupExtension    = "group.message.extension" // Group.CallbackAfterGroupMsgExtension
	TypeC2CExtension      = "c2c.message.extension"   // C2C.CallbackAfterC2CMsgExtension
	TypeGroupCreated      = "group.created"           // Group.CallbackAfterCreateGroup
	TypeGroupMemberChange = "group.member.changed"    // Group.CallbackAfterMemberFieldChanged
	TypeGroupOwnerChanged = "group.owner.changed"     // Group.CallbackAfterChangeGroupOwner
	TypeTopicCreated      = "group.topic.created"     // Group.CallbackAfterCreateTopic
	TypeTopicDestroyed    = "group.topic.destroyed"   // Group.CallbackAfterTopicDestroyed
	TypeTopicChanged      = "group.topic.changed"     // Group.CallbackAfterTopicInfoChanged
	TypeGroupAttrsChanged = "group.attrs.changed"     // Group.CallbackAfterGroupAttrChanged
	TypeGroupMemberStatus = "group.member.status"     // Group.CallbackOnMemberStateChange
)

// Values of Event.Status, from the IM's Info.Action.
const (
	StatusLogin      = "login"
	StatusLogout     = "logout"
	StatusDisconnect = "disconnect"

	// group.member.status's, from the IM's EventType.
	StatusOnline  = "online"
	StatusOffline = "offline"
)

// Values of Event.Operation for a message extension change, from the IM's
// OperateType 1, 2 and 3.
const (
	OperationSet    = "set"
	OperationDelete = "delete"
	OperationClear  = "clear"
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
	// modified or extended, or every one recalled.
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
	// ("Register", "Unregister", "LinkClose", "TimeOut"). Of
	// group.member.status they are "online" or "offline" (EventType, lower
	// case) and the IM's EventCause as it is ("HeartbeatInterrupt",
	// "HeartbeatRecover", "Join", "Quit").
	Status string `json:"status,omitempty"`
	Reason string `json:"reason,omitempty"`
	// KickedDevices are the user's other devices a login forced offline
	// (the IM's KickedDevice).
	KickedDevices []Device `json:"kicked_devices,omitempty"`

	// Members are the users who joined (NewMemberList) or left
	// (ExitMemberList) the group, a new group's first members and the
	// members whose state or fields changed (MemberList, Member_Account),
	// each once, in the IM's order.
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
	// Changes is what group.info.changed and group.topic.changed changed:
	// only the profile fields the IM sent.
	Changes *GroupChanges `json:"changes,omitempty"`

	// Owner is a new group's owner, or the one a group passed to
	// (group.owner.changed); PreviousOwner the one it passed from.
	Owner         string `json:"owner,omitempty"`
	PreviousOwner string `json:"previous_owner,omitempty"`
	// Name is a new group's or topic's name, or a topic's new one.
	Name string `json:"name,omitempty"`
	// Role and NameCard are what group.member.changed changed of its
	// member, each present only when the IM sent it: Role as the IM
	// names it ("Admin", "Member"), NameCard as it is now, an empty string
	// for one that was cleared.
	Role     string  `json:"role,omitempty"`
	NameCard *string `json:"name_card,omitempty"`
	// TopicIDs are the topics group.topic.destroyed ended (TopicIdList).
	TopicIDs []string `json:"topic_ids,omitempty"`
	// Operation is what a change did: of a message's extensions "set",
	// "delete" or "clear"; of a group's attributes the IM's OptionType in
	// lower case ("set", "modify", "clear", "delete").
	Operation string `json:"operation,omitempty"`
	// Attrs are the group's custom attributes group.attrs.changed names
	// (GroupAttr), key to value.
	Attrs map[string]string `json:"attrs,omitempty"`
	// Extensions are the message's extension keys a change set or deleted
	// (ExtensionList; none for a clear); ExtensionSeq is the message's
	// extension version after it (the IM's Seq), which orders the changes
	// of one message.
	Extensions   []Extension `json:"extensions,omitempty"`
	ExtensionSeq int64       `json:"extension_seq,omitempty"`

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

// Extension is one key of a message's extension: its value after the
// change (empty once deleted) and the version the IM gave it.
type Extension struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Seq   int64  `json:"seq"`
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
//
// It writes what encoding/json would, field by field, without reflection:
// every callback is encoded once, and reflection cost it more than the rest
// of the encoding did.
func (e *Event) Encode() ([]byte, error) {
	// Room for a message event without growing: about 350 bytes besides
	// its text.
	b := make([]byte, 0, 512+len(e.Body)+len(e.CloudCustomData))
	b = append(b, `{"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"app":`...)
	b = appendString(b, e.App)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, e.Time, 10)
	b = appendOptString(b, `,"group_id":`, e.GroupID)
	b = appendOptString(b, `,"group_type":`, e.GroupType)
	b = appendOptString(b, `,"topic_id":`, e.TopicID)
	b = appendOptString(b, `,"from":`, e.From)
	b = appendOptString(b, `,"to":`, e.To)
	b = appendOptString(b, `,"operator":`, e.Operator)
	if len(e.Messages) > 0 {
		b = append(b, `,"messages":[`...)
		for i, m := range e.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = m.appendJSON(b)
		}
		b = append(b, ']')
	}
	if len(e.Body) > 0 {
		b = append(b, `,"body":`...)
		// As encoding/json writes a json.RawMessage: compacted, and an
		// error if it is not JSON.
		if !json.Valid(e.Body) {
			return nil, fmt.Errorf("json: error calling MarshalJSON for type json.RawMessage: %w",
				json.Compact(new(bytes.Buffer), e.Body))
		}
		b = appendCompact(b, e.Body)
	}
	b = appendOptString(b, `,"cloud_custom_data":`, e.CloudCustomData)
	if e.OnlineOnly {
		b = append(b, `,"online_only":true`...)
	}
	if e.Unread != nil {
		b = append(b, `,"unread":`...)
		b = strconv.AppendInt(b, *e.Unread, 10)
	}
	b = appendOptInt(b, `,"send_result":`, e.SendResult)
	b = appendOptString(b, `,"error_info":`, e.ErrorInfo)
	b = appendOptString(b, `,"status":`, e.Status)
	b = appendOptString(b, `,"reason":`, e.Reason)
	if len(e.KickedDevices) > 0 {
		b = append(b, `,"kicked_devices":[`...)
		for i, d := range e.KickedDevices {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"platform":`...)
			b = appendString(b, d.Platform)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(e.Members) > 0 {
		b = append(b, `,"members":`...)
		b = appendStrings(b, e.Members)
	}
	b = appendOptString(b, `,"join_type":`, e.JoinType)
	b = appendOptString(b, `,"exit_type":`, e.ExitType)
	b = appendOptInt(b, `,"last_read_time":`, e.LastReadTime)
	if len(e.Receipts) > 0 {
		b = append(b, `,"receipts":[`...)
		for i, r := range e.Receipts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"seq":`...)
			b = strconv.AppendInt(b, r.Seq, 10)
			b = append(b, `,"read":`...)
			b = strconv.AppendInt(b, r.Read, 10)
			b = append(b, `,"unread":`...)
			b = strconv.AppendInt(b, r.Unread, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if e.Changes != nil {
		b = append(b, `,"changes":`...)
		b = e.Changes.appendJSON(b)
	}
	b = appendOptString(b, `,"owner":`, e.Owner)
	b = appendOptString(b, `,"previous_owner":`, e.PreviousOwner)
	b = appendOptString(b, `,"name":`, e.Name)
	b = appendOptString(b, `,"role":`, e.Role)
	if e.NameCard != nil {
		b = append(b, `,"name_card":`...)
		b = appendString(b, *e.NameCard)
	}
	if len(e.TopicIDs) > 0 {
		b = append(b, `,"topic_ids":`...)
		b = appendStrings(b, e.TopicIDs)
	}
	b = appendOptString(b, `,"operation":`, e.Operation)
	if len(e.Attrs) > 0 {
		b = append(b, `,"attrs":`...)
		b = appendStringMap(b, e.Attrs)
	}
	if len(e.Extensions) > 0 {
		b = append(b, `,"extensions":[`...)
		for i, x := range e.Extensions {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"key":`...)
			b = appendString(b, x.Key)
			b = append(b, `,"value":`...)
			b = appendString(b, x.Value)
			b = append(b, `,"seq":`...)
			b = strconv.AppendInt(b, x.Seq, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendOptInt(b, `,"extension_seq":`, e.ExtensionSeq)
	b = appendOptString(b, `,"platform":`, e.Platform)
	b = appendOptString(b, `,"client_ip":`, e.ClientIP)
	b = append(b, `,"command":`...)
	b = appendString(b, e.Command)
	b = append(b, `,"received":`...)
	b = strconv.AppendInt(b, e.Received, 10)
	return append(b, '}'), nil
}

func (m MessageRef) appendJSON(b []byte) []byte {
	b = append(b, '{')
	n := len(b)
	b = appendOptInt(b, `,"seq":`, m.Seq)
	b = appendOptString(b, `,"id":`, m.ID)
	b = appendOptString(b, `,"key":`, m.Key)
	b = appendOptInt(b, `,"random":`, m.Random)
	return append(dropComma(b, n), '}')
}

func (c *GroupChanges) appendJSON(b []byte) []byte {
	b = append(b, '{')
	n := len(b)
	for _, f := range []struct {
		key string
		v   *string
	}{{`,"name":`, c.Name}, {`,"introduction":`, c.Introduction}, {`,"notification":`, c.Notification}, {`,"face_url":`, c.FaceURL}} {
		if f.v != nil {
			b = append(b, f.key...)
			b = appendString(b, *f.v)
		}
	}
	if len(c.Custom) > 0 {
		b = append(b, `,"custom":`...)
		b = appendStringMap(b, c.Custom)
	}
	return append(dropComma(b, n), '}')
}

// appendStrings appends a JSON array of strings.
func appendStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendStringMap appends a JSON object of strings, its keys in order as
// encoding/json writes them.
func appendStringMap(b []byte, m map[string]string) []byte {
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// dropComma removes the comma at b[n], where the first member of an object
// whose members are all optional went.
func dropComma(b []byte, n int) []byte {
	if len(b) > n {
		return append(b[:n], b[n+1:]...)
	}
	return b
}

// appendOptString is an omitempty string member.
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendOptInt is an omitempty integer member.
func appendOptInt(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), n, 10)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, as encoding/json does with HTML
// escaping off: '"', '\\' and control characters escaped, U+2028 and U+2029
// escaped, and each byte that is not UTF-8 written as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
