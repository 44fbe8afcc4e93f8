package callback

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The commands that are published. Any other command is acknowledged and
// counted, not published.
const (
	CommandGroupSend   = "Group.CallbackAfterSendMsg"
	CommandGroupRecall = "Group.CallbackAfterRecallMsg"
	CommandC2CSend     = "C2C.CallbackAfterSendMsg"
	CommandC2CWithdraw = "C2C.CallbackAfterMsgWithDraw"

	CommandStateChange      = "State.StateChange"
	CommandGroupMemberJoin  = "Group.CallbackAfterNewMemberJoin"
	CommandGroupMemberExit  = "Group.CallbackAfterMemberExit"
	CommandC2CReport        = "C2C.CallbackAfterMsgReport"
	CommandGroupReadReceipt = "Group.CallbackAfterReadReceipt"
	CommandGroupDestroyed   = "Group.CallbackAfterGroupDestroyed"
	CommandGroupInfoChanged = "Group.CallbackAfterGroupInfoChanged"

	CommandGroupModify        = "Group.CallbackAfterModifyMsg"
	CommandC2CModify          = "C2C.CallbackAfterModifyMsg"
	CommandGroupExtension     = "Group.CallbackAfterGroupMsgExtension"
	CommandC2CExtension       = "C2C.CallbackAfterC2CMsgExtension"
	CommandGroupCreate        = "Group.CallbackAfterCreateGroup"
	CommandGroupMemberChanged = "Group.CallbackAfterMemberFieldChanged"
	CommandGroupOwnerChanged  = "Group.CallbackAfterChangeGroupOwner"
	CommandTopicCreate        = "Group.CallbackAfterCreateTopic"
	CommandTopicDestroyed     = "Group.CallbackAfterTopicDestroyed"
	CommandTopicInfoChanged   = "Group.CallbackAfterTopicInfoChanged"
	CommandGroupAttrChanged   = "Group.CallbackAfterGroupAttrChanged"
	CommandMemberStateChange  = "Group.CallbackOnMemberStateChange"
)

// Commands lists the published commands.
var Commands = []string{
	CommandGroupSend, CommandGroupRecall, CommandC2CSend, CommandC2CWithdraw,
	CommandStateChange, CommandGroupMemberJoin, CommandGroupMemberExit, CommandC2CReport,
	CommandGroupReadReceipt, CommandGroupDestroyed, CommandGroupInfoChanged,
	CommandGroupModify, CommandC2CModify, CommandGroupExtension, CommandC2CExtension,
	CommandGroupCreate, CommandGroupMemberChanged, CommandGroupOwnerChanged,
	CommandTopicCreate, CommandTopicDestroyed, CommandTopicInfoChanged,
	CommandGroupAttrChanged, CommandMemberStateChange,
}

// ErrUnknownCommand is returned by Parse for a command imhub does not
// publish.
var ErrUnknownCommand = errors.New("command is not published")

// maxIDLen bounds the IM identifiers that become channel names. IM user and
// group ids are far shorter; anything longer is not from the IM.
const maxIDLen = 256

// Request is what the query string and the transport say about a callback.
type Request struct {
	App      string // SdkAppid
	Command  string // CallbackCommand from the query
	ClientIP string
	Platform string // OptPlatform
	Received time.Time
}

// BadRequestError says what is wrong with a callback body.
type BadRequestError struct{ Reason string }

func (e *BadRequestError) Error() string { return e.Reason }

func badRequest(format string, args ...any) error {
	return &BadRequestError{Reason: fmt.Sprintf(format, args...)}
}

// Parse normalizes one callback body. It returns the event and the channels
// it goes to, ErrUnknownCommand for a command that is not published, or a
// *BadRequestError saying what is wrong with the body.
//
// Required fields must be present with the right JSON type. An optional
// field of an unexpected type is left out of the event rather than
// refusing the callback: the IM adds and changes fields over time, and an
// event is worth more than a perfect one.
//
// Text that is not valid UTF-8, in the body or in req's ClientIP and
// Platform, is repaired: each bad byte becomes U+FFFD, in keys and in
// MsgBody too, so the event always encodes to valid UTF-8.
//
// The event's Body is body's own memory where no repair was needed: body
// must not change while the event is in use.
func Parse(req Request, body []byte) (*Event, []string, error) {
	ev, channels, _, err := parseRepairing(req, body)
	return ev, channels, err
}

// parseRepairing is Parse, and also says whether any text was repaired.
// body is not modified; the repair, when one is needed, is a copy.
func parseRepairing(req Request, body []byte) (ev *Event, channels []string, repaired bool, err error) {
	body, badBody := repairUTF8(body)
	var badIP, badPlatform bool
	req.ClientIP, badIP = repairString(req.ClientIP)
	req.Platform, badPlatform = repairString(req.Platform)
	ev, channels, err = parse(req, body)
	return ev, channels, badBody || badIP || badPlatform, err
}

// parse is Parse for text that is valid UTF-8.
func parse(req Request, body []byte) (*Event, []string, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, badRequest("body is not a JSON object")
	}
	if !json.Valid(body) {
		// encoding/json says what is wrong, and where.
		var f map[string]json.RawMessage
		err := json.Unmarshal(body, &f)
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, nil, badRequest("body is not valid JSON: %v (at byte %d)", syn, syn.Offset)
		}
		return nil, nil, badRequest("body is not valid JSON: %v", err)
	}
	// The IM's bodies have a dozen or so fields: room for them without
	// an allocation.
	var room [24]field
	f := objectOf(room[:0], trimmed)
	if raw, ok := f.get("CallbackCommand"); ok {
		if cmd, ok := str(raw); !ok || cmd != req.Command {
			return nil, nil, badRequest("CallbackCommand %s in the body differs from %q in the query", clip(string(raw)), clip(req.Command))
		}
	}
	var (
		ev       *Event
		identity string
		err      error
	)
	switch req.Command {
	case CommandGroupSend:
		ev, identity, err = f.groupSend()
	case CommandGroupRecall:
		ev, identity, err = f.groupRecall()
	case CommandC2CSend:
		ev, identity, err = f.c2cSend()
	case CommandC2CWithdraw:
		ev, identity, err = f.c2cWithdraw()
	case CommandStateChange:
		ev, identity, err = f.stateChange(req)
	case CommandGroupMemberJoin:
		ev, identity, err = f.memberJoin(req)
	case CommandGroupMemberExit:
		ev, identity, err = f.memberExit(req)
	case CommandC2CReport:
		ev, identity, err = f.c2cReport()
	case CommandGroupReadReceipt:
		ev, identity, err = f.readReceipt()
	case CommandGroupDestroyed:
		ev, identity, err = f.groupDestroyed(req)
	case CommandGroupInfoChanged:
		ev, identity, err = f.groupInfoChanged(req)
	case CommandGroupModify:
		ev, identity, err = f.groupModified(req)
	case CommandC2CModify:
		ev, identity, err = f.c2cModified(req)
	case CommandGroupExtension:
		ev, identity, err = f.groupExtension()
	case CommandC2CExtension:
		ev, identity, err = f.c2cExtension()
	case CommandGroupCreate:
		ev, identity, err = f.groupCreated(req)
	case CommandGroupMemberChanged:
		ev, identity, err = f.memberChanged(req)
	case CommandGroupOwnerChanged:
		ev, identity, err = f.ownerChanged(req)
	case CommandTopicCreate:
		ev, identity, err = f.topicCreated()
	case CommandTopicDestroyed:
		ev, identity, err = f.topicDestroyed()
	case CommandTopicInfoChanged:
		ev, identity, err = f.topicChanged(req)
	case CommandGroupAttrChanged:
		ev, identity, err = f.attrsChanged(req)
	case CommandMemberStateChange:
		ev, identity, err = f.memberStatus(req)
	default:
		return nil, nil, ErrUnknownCommand
	}
	if err != nil {
		return nil, nil, err
	}
	channels := channelsOf(ev)
	ev.App = req.App
	ev.Command = req.Command
	ev.ID = eventID(req.App, req.Command, identity)
	ev.Platform = req.Platform
	ev.ClientIP = req.ClientIP
	ev.Received = req.Received.UnixMilli()
	if t, ok := f.millis("EventTime"); ok && t > 0 {
		ev.Time = t
	} else if t, ok := f.optInt("MsgTime"); ok && t > 0 {
		ev.Time = t * 1000
	} else {
		ev.Time = ev.Received
	}
	return ev, channels, nil
}

// channelsOf returns the channels an event goes to: a group event to its
// group and to the users it is about (see personal), any other to each of
// its users once; every event also to "app".
func channelsOf(ev *Event) []string {
	var channels []string
	if ev.GroupID != "" {
		users := personal(ev)
		channels = make([]string, 0, 2+len(users))
		channels = append(channels, "group:"+ev.GroupID)
		for _, u := range users {
			channels = append(channels, "user:"+u)
		}
	} else {
		channels = []string{"user:" + ev.From}
		if ev.To != "" && ev.To != ev.From {
			channels = append(channels, "user:"+ev.To)
		}
	}
	return append(channels, "app")
}

// personal is the users a group event goes to on their own channels too,
// each once: those who joined or left it, whose role or name card
// changed, and a new group's owner and first members, so that a client
// learns what became of it without watching the group. An audio-video
// group's members coming and going is news for the room alone: its
// thousands of members come and go all the time.
func personal(ev *Event) []string {
	switch ev.Type {
	case TypeGroupMemberStatus:
		return nil
	case TypeGroupCreated:
		if ev.Owner == "" || slices.Contains(ev.Members, ev.Owner) {
			return ev.Members
		}
		return append([]string{ev.Owner}, ev.Members...)
	}
	return ev.Members
}

// eventID is stable across retries of one IM event, and differs between
// apps and commands (a send and the recall of the same message are two
// events). identity says which event of the command it is: the message
// identity for a message command; for the others, which carry none, what
// each parser's comment gives (the IM's EventTime for a status change, a
// join, a leave, a profile change and a group's end; the point read up to
// for a read report; the counts for a read receipt).
func eventID(app, command, identity string) string {
	h := sha256.New()
	h.Write([]byte(app))
	h.Write([]byte{0})
	h.Write([]byte(command))
	h.Write([]byte{0})
	h.Write([]byte(identity))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// get returns a field that is present and not null.
func (f fields) get(name string) (json.RawMessage, bool) {
	for i := len(f) - 1; i >= 0; i-- {
		if string(f[i].key) == name {
			if string(f[i].raw) == "null" {
				return nil, false
			}
			return f[i].raw, true
		}
	}
	return nil, false
}

// kind names the JSON type of a value, for error messages.
func kind(raw json.RawMessage) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// id is a required, non-empty string that becomes part of a channel name.
func (f fields) id(name string) (string, error) {
	raw, ok := f.get(name)
	if !ok {
		return "", badRequest("%s: required string is missing", name)
	}
	s, ok := str(raw)
	if !ok {
		return "", badRequest("%s: want string, got %s", name, kind(raw))
	}
	switch {
	case s == "":
		return "", badRequest("%s: must not be empty", name)
	case len(s) > maxIDLen:
		return "", badRequest("%s: longer than %d bytes", name, maxIDLen)
	}
	return s, nil
}

// integer decodes raw as a JSON integer; name is for the error.
func integer(name string, raw json.RawMessage) (int64, error) {
	if raw[0] == '"' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f' {
		return 0, badRequest("%s: want integer, got %s", name, kind(raw))
	}
	n, err := parseInt(raw)
	if err != nil {
		return 0, badRequest("%s: want integer, got %s", name, clip(string(raw)))
	}
	return n, nil
}

func (f fields) requiredInt(name string) (int64, error) {
	raw, ok := f.get(name)
	if !ok {
		return 0, badRequest("%s: required integer is missing", name)
	}
	return integer(name, raw)
}

func (f fields) optInt(name string) (int64, bool) {
	raw, ok := f.get(name)
	if !ok {
		return 0, false
	}
	n, err := integer(name, raw)
	return n, err == nil
}

func (f fields) optString(name string) string {
	raw, _ := f.get(name)
	s, _ := str(raw)
	return s
}

// millis reads a millisecond timestamp that the IM sends as a number in
// some schema versions and as a decimal string in others.
func (f fields) millis(name string) (int64, bool) {
	raw, ok := f.get(name)
	if !ok {
		return 0, false
	}
	if raw[0] == '"' {
		s, ok := str(raw)
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	n, err := integer(name, raw)
	return n, err == nil
}

// body is a send's MsgBody: a required array, passed on as it is.
func (f fields) body() (json.RawMessage, error) {
	raw, ok := f.get("MsgBody")
	if !ok {
		return nil, badRequest("MsgBody: required array is missing")
	}
	if raw[0] != '[' {
		return nil, badRequest("MsgBody: want array, got %s", kind(raw))
	}
	return raw, nil
}

// groupMessage is the group and MsgSeq that name a group message.
func (f fields) groupMessage() (group string, seq int64, err error) {
	if group, err = f.id("GroupId"); err != nil {
		return "", 0, err
	}
	if seq, err = f.requiredInt("MsgSeq"); err != nil {
		return "", 0, err
	}
	return group, seq, nil
}

// groupMessageBody is groupMessage and the message's body, as a send or
// an edit gives them.
func (f fields) groupMessageBody() (group string, seq int64, body json.RawMessage, err error) {
	if group, seq, err = f.groupMessage(); err != nil {
		return "", 0, nil, err
	}
	if body, err = f.body(); err != nil {
		return "", 0, nil, err
	}
	return group, seq, body, nil
}

func (f fields) groupSend() (*Event, string, error) {
	group, seq, body, err := f.groupMessageBody()
	if err != nil {
		return nil, "", err
	}
	random, _ := f.optInt("Random")
	online, _ := f.optInt("OnlineOnlyFlag")
	ev := &Event{
		Type:            TypeGroupSent,
		GroupID:         group,
		GroupType:       f.optString("Type"),
		TopicID:         f.optString("TopicId"),
		From:            f.optString("From_Account"),
		Operator:        f.optString("Operator_Account"),
		Messages:        []MessageRef{{Seq: seq, ID: f.optString("MsgId"), Random: random}},
		Body:            body,
		CloudCustomData: f.optString("CloudCustomData"),
		OnlineOnly:      online == 1,
	}
	return ev, group + "\x00" + ev.TopicID + "\x00" + strconv.FormatInt(seq, 10), nil
}

func (f fields) groupRecall() (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	raw, ok := f.get("MsgSeqList")
	if !ok {
		return nil, "", badRequest("MsgSeqList: required non-empty array is missing")
	}
	list, ok := objectListOf(raw)
	if !ok {
		return nil, "", badRequest("MsgSeqList: want array of objects, got %s", kind(raw))
	}
	if len(list) == 0 {
		return nil, "", badRequest("MsgSeqList: required non-empty array is missing")
	}
	refs := make([]MessageRef, len(list))
	seqs := make([]int64, len(list))
	for i, item := range list {
		seq, err := item.requiredInt("MsgSeq")
		if err != nil {
			return nil, "", badRequest("MsgSeqList[%d].%s", i, err.Error())
		}
		refs[i] = MessageRef{Seq: seq, ID: item.optString("MsgId")}
		seqs[i] = seq
	}
	ev := &Event{
		Type:      TypeGroupRecalled,
		GroupID:   group,
		GroupType: f.optString("Type"),
		TopicID:   f.optString("TopicId"),
		Operator:  f.optString("Operator_Account"),
		Messages:  refs,
	}
	// The same recall may list its messages in another order on a retry.
	slices.Sort(seqs)
	identity := group + "\x00" + ev.TopicID
	for _, s := range seqs {
		identity += "\x00" + strconv.FormatInt(s, 10)
	}
	return ev, identity, nil
}

func (f fields) parties() (from, to string, err error) {
	if from, err = f.id("From_Account"); err != nil {
		return "", "", err
	}
	if to, err = f.id("To_Account"); err != nil {
		return "", "", err
	}
	return from, to, nil
}

func (f fields) unread() *int64 {
	if n, ok := f.optInt("UnreadMsgNum"); ok {
		return &n
	}
	return nil
}

// c2cMessage is the parties and the identity of a one-to-one message:
// MsgKey, or MsgId where the IM gave none.
func (f fields) c2cMessage() (from, to, key string, err error) {
	if from, to, err = f.parties(); err != nil {
		return "", "", "", err
	}
	key = f.optString("MsgKey")
	if key == "" {
		key = f.optString("MsgId")
	}
	if key == "" {
		return "", "", "", badRequest("MsgKey: required string is missing (and no MsgId either)")
	}
	return from, to, key, nil
}

// c2cMessageBody is c2cMessage and the message's body, as a send or an
// edit gives them.
func (f fields) c2cMessageBody() (from, to, key string, body json.RawMessage, err error) {
	if from, to, key, err = f.c2cMessage(); err != nil {
		return "", "", "", nil, err
	}
	if body, err = f.body(); err != nil {
		return "", "", "", nil, err
	}
	return from, to, key, body, nil
}

func (f fields) c2cSend() (*Event, string, error) {
	from, to, key, body, err := f.c2cMessageBody()
	if err != nil {
		return nil, "", err
	}
	seq, _ := f.optInt("MsgSeq")
	random, _ := f.optInt("MsgRandom")
	online, _ := f.optInt("OnlineOnlyFlag")
	result, _ := f.optInt("SendMsgResult")
	ev := &Event{
		Type:            TypeC2CSent,
		From:            from,
		To:              to,
		Messages:        []MessageRef{{Seq: seq, ID: f.optString("MsgId"), Key: f.optString("MsgKey"), Random: random}},
		Body:            body,
		CloudCustomData: f.optString("CloudCustomData"),
		OnlineOnly:      online == 1,
		Unread:          f.unread(),
		SendResult:      result,
	}
	if result != 0 {
		ev.ErrorInfo = f.optString("ErrorInfo")
	}
	return ev, from + "\x00" + to + "\x00" + key, nil
}

func (f fields) c2cWithdraw() (*Event, string, error) {
	from, to, err := f.parties()
	if err != nil {
		return nil, "", err
	}
	key, err := f.id("MsgKey")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:     TypeC2CRecalled,
		From:     from,
		To:       to,
		Messages: []MessageRef{{Key: key, ID: f.optString("MsgId")}},
		Unread:   f.unread(),
	}
	return ev, from + "\x00" + to + "\x00" + key, nil
}
