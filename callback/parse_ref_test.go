package callback

// The body parser as it was before Parse read the body in one pass with a
// validator and field splitter of its own: each level decoded by
// encoding/json into a map of raw fields, and the event encoded by
// encoding/json. FuzzParseMatchesReference holds Parse and Encode to it.
// Apart from the names, prefixed ref, it is that code unchanged.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// refParse is Parse as it was.
func refParse(req Request, body []byte) (*Event, []string, error) {
	ev, channels, _, err := refParseRepairing(req, body)
	return ev, channels, err
}

// refEncode is Encode as it was: encoding/json, HTML characters not
// escaped, no trailing newline.
func refEncode(e *Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// parseRepairing is Parse, and also says whether any text was repaired.
// body is not modified; the repair, when one is needed, is a copy.
func refParseRepairing(req Request, body []byte) (ev *Event, channels []string, repaired bool, err error) {
	body, badBody := repairUTF8(body)
	var badIP, badPlatform bool
	req.ClientIP, badIP = repairString(req.ClientIP)
	req.Platform, badPlatform = repairString(req.Platform)
	ev, channels, err = refParseValid(req, body)
	return ev, channels, badBody || badIP || badPlatform, err
}

// parse is Parse for text that is valid UTF-8.
func refParseValid(req Request, body []byte) (*Event, []string, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, badRequest("body is not a JSON object")
	}
	var f refFields
	if err := json.Unmarshal(body, &f); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, nil, badRequest("body is not valid JSON: %v (at byte %d)", syn, syn.Offset)
		}
		return nil, nil, badRequest("body is not valid JSON: %v", err)
	}
	if raw, ok := f.get("CallbackCommand"); ok {
		var cmd string
		if json.Unmarshal(raw, &cmd) != nil || cmd != req.Command {
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
	default:
		return nil, nil, ErrUnknownCommand
	}
	if err != nil {
		return nil, nil, err
	}
	channels := refChannelsOf(ev)
	ev.App = req.App
	ev.Command = req.Command
	ev.ID = refEventID(req.App, req.Command, identity)
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
// group and to each member who joined or left it (so that a client learns
// it was added or removed without watching the group), any other to each
// of its users once; every event also to "app".
func refChannelsOf(ev *Event) []string {
	var channels []string
	if ev.GroupID != "" {
		channels = make([]string, 0, 2+len(ev.Members))
		channels = append(channels, "group:"+ev.GroupID)
		for _, m := range ev.Members {
			channels = append(channels, "user:"+m)
		}
	} else {
		channels = []string{"user:" + ev.From}
		if ev.To != "" && ev.To != ev.From {
			channels = append(channels, "user:"+ev.To)
		}
	}
	return append(channels, "app")
}

// eventID is stable across retries of one IM event, and differs between
// apps and commands (a send and the recall of the same message are two
// events). identity says which event of the command it is: the message
// identity for a message command; for the others, which carry none, what
// each parser's comment gives (the IM's EventTime for a status change, a
// join, a leave, a profile change and a group's end; the point read up to
// for a read report; the counts for a read receipt).
func refEventID(app, command, identity string) string {
	h := sha256.New()
	h.Write([]byte(app))
	h.Write([]byte{0})
	h.Write([]byte(command))
	h.Write([]byte{0})
	h.Write([]byte(identity))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// fields is a callback body's top-level fields, undecoded. Keys match
// exactly, as the IM sends them.
type refFields map[string]json.RawMessage

// get returns a field that is present and not null.
func (f refFields) get(name string) (json.RawMessage, bool) {
	raw, ok := f[name]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// kind names the JSON type of a value, for error messages.
func refKind(raw json.RawMessage) string {
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
func (f refFields) id(name string) (string, error) {
	raw, ok := f.get(name)
	if !ok {
		return "", badRequest("%s: required string is missing", name)
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", badRequest("%s: want string, got %s", name, refKind(raw))
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
func refInteger(name string, raw json.RawMessage) (int64, error) {
	var n int64
	if raw[0] == '"' || raw[0] == '{' || raw[0] == '[' || raw[0] == 't' || raw[0] == 'f' {
		return 0, badRequest("%s: want refInteger, got %s", name, refKind(raw))
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, badRequest("%s: want refInteger, got %s", name, clip(string(raw)))
	}
	return n, nil
}

func (f refFields) requiredInt(name string) (int64, error) {
	raw, ok := f.get(name)
	if !ok {
		return 0, badRequest("%s: required refInteger is missing", name)
	}
	return refInteger(name, raw)
}

func (f refFields) optInt(name string) (int64, bool) {
	raw, ok := f.get(name)
	if !ok {
		return 0, false
	}
	n, err := refInteger(name, raw)
	return n, err == nil
}

func (f refFields) optString(name string) string {
	var s string
	if raw, ok := f.get(name); ok && raw[0] == '"' {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

// millis reads a millisecond timestamp that the IM sends as a number in
// some schema versions and as a decimal string in others.
func (f refFields) millis(name string) (int64, bool) {
	raw, ok := f.get(name)
	if !ok {
		return 0, false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	n, err := refInteger(name, raw)
	return n, err == nil
}

// body is a send's MsgBody: a required array, passed on as it is.
func (f refFields) body() (json.RawMessage, error) {
	raw, ok := f.get("MsgBody")
	if !ok {
		return nil, badRequest("MsgBody: required array is missing")
	}
	if raw[0] != '[' {
		return nil, badRequest("MsgBody: want array, got %s", refKind(raw))
	}
	return raw, nil
}

func (f refFields) groupSend() (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	seq, err := f.requiredInt("MsgSeq")
	if err != nil {
		return nil, "", err
	}
	body, err := f.body()
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

func (f refFields) groupRecall() (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	raw, ok := f.get("MsgSeqList")
	if !ok {
		return nil, "", badRequest("MsgSeqList: required non-empty array is missing")
	}
	var list []refFields
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, "", badRequest("MsgSeqList: want array of objects, got %s", refKind(raw))
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

func (f refFields) parties() (from, to string, err error) {
	if from, err = f.id("From_Account"); err != nil {
		return "", "", err
	}
	if to, err = f.id("To_Account"); err != nil {
		return "", "", err
	}
	return from, to, nil
}

func (f refFields) unread() *int64 {
	if n, ok := f.optInt("UnreadMsgNum"); ok {
		return &n
	}
	return nil
}

func (f refFields) c2cSend() (*Event, string, error) {
	from, to, err := f.parties()
	if err != nil {
		return nil, "", err
	}
	key := f.optString("MsgKey")
	if key == "" {
		key = f.optString("MsgId")
	}
	if key == "" {
		return nil, "", badRequest("MsgKey: required string is missing (and no MsgId either)")
	}
	body, err := f.body()
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

func (f refFields) c2cWithdraw() (*Event, string, error) {
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

// maxMembers bounds the members of one join or leave, each of which is a
// channel the event goes to. The IM adds and removes members in batches of
// a few hundred at most; a list far longer is not from the IM.
const refMaxMembers = 1000

// memberJoin is Group.CallbackAfterNewMemberJoin.
//
// Identity: the group, the members (in any order) and EventTime (see
// occurrence): the same users may join, leave and join again.
func (f refFields) memberJoin(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	members, err := f.members("NewMemberList")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupMemberJoined,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Operator:  f.optString("Operator_Account"),
		Members:   members,
		JoinType:  f.optString("JoinType"),
	}
	return ev, group + "\x00" + refMemberIdentity(members) + "\x00" + f.occurrence(req), nil
}

// memberExit is Group.CallbackAfterMemberExit. The members who left get it
// on their own channel too, which is how a client learns it was kicked.
//
// Identity: the group, the members (in any order), ExitType and EventTime
// (see occurrence).
func (f refFields) memberExit(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	members, err := f.members("ExitMemberList")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupMemberLeft,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Operator:  f.optString("Operator_Account"),
		Members:   members,
		ExitType:  f.optString("ExitType"),
	}
	return ev, group + "\x00" + refMemberIdentity(members) + "\x00" + ev.ExitType + "\x00" + f.occurrence(req), nil
}

// members reads a required, non-empty list of {"Member_Account": id}:
// each member once, in the IM's order.
func (f refFields) members(name string) ([]string, error) {
	raw, ok := f.get(name)
	if !ok {
		return nil, badRequest("%s: required non-empty array is missing", name)
	}
	var list []refFields
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, badRequest("%s: want array of objects, got %s", name, refKind(raw))
	}
	switch {
	case len(list) == 0:
		return nil, badRequest("%s: required non-empty array is missing", name)
	case len(list) > refMaxMembers:
		return nil, badRequest("%s: more than %d members", name, refMaxMembers)
	}
	members := make([]string, 0, len(list))
	seen := make(map[string]bool, len(list))
	for i, item := range list {
		m, err := item.id("Member_Account")
		if err != nil {
			return nil, badRequest("%s[%d].%s", name, i, err.Error())
		}
		if !seen[m] {
			seen[m] = true
			members = append(members, m)
		}
	}
	return members, nil
}

// memberIdentity names a set of members whatever their order: a retry may
// list them in another.
func refMemberIdentity(members []string) string {
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	return strings.Join(sorted, "\x00")
}

// readReceipt is Group.CallbackAfterReadReceipt: the read and unread
// counts of some of the group's messages.
//
// Identity: the group, the topic and every message's seq and counts (in
// any order). Counts only grow as members read, so a receipt with the same
// counts says nothing new, whenever it came.
func (f refFields) readReceipt() (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	const name = "GroupMsgReceiptList"
	raw, ok := f.get(name)
	if !ok {
		return nil, "", badRequest("%s: required non-empty array is missing", name)
	}
	var list []refFields
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, "", badRequest("%s: want array of objects, got %s", name, refKind(raw))
	}
	if len(list) == 0 {
		return nil, "", badRequest("%s: required non-empty array is missing", name)
	}
	receipts := make([]Receipt, len(list))
	for i, item := range list {
		var r Receipt
		for _, field := range []struct {
			name string
			to   *int64
		}{{"MsgSeq", &r.Seq}, {"ReadNum", &r.Read}, {"UnreadNum", &r.Unread}} {
			n, err := item.requiredInt(field.name)
			if err != nil {
				return nil, "", badRequest("%s[%d].%s", name, i, err.Error())
			}
			*field.to = n
		}
		receipts[i] = r
	}
	ev := &Event{
		Type:      TypeGroupRead,
		GroupID:   group,
		GroupType: f.optString("Type"),
		TopicID:   f.optString("TopicId"),
		Receipts:  receipts,
	}
	counts := make([]string, len(receipts))
	for i, r := range receipts {
		counts[i] = strconv.FormatInt(r.Seq, 10) + ":" + strconv.FormatInt(r.Read, 10) + ":" + strconv.FormatInt(r.Unread, 10)
	}
	slices.Sort(counts)
	return ev, group + "\x00" + ev.TopicID + "\x00" + strings.Join(counts, "\x00"), nil
}

// groupDestroyed is Group.CallbackAfterGroupDestroyed. The IM's member
// list (up to the whole group) is not carried: the event goes to the
// group's channel, where its members listen.
//
// Identity: the group and EventTime (see occurrence): a group id may be
// used again for a new group.
func (f refFields) groupDestroyed(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupDestroyed,
		GroupID:   group,
		GroupType: f.optString("Type"),
	}
	return ev, group + "\x00" + f.occurrence(req), nil
}

// groupInfoChanged is Group.CallbackAfterGroupInfoChanged. The IM sends
// only the profile fields that changed; so does the event, in Changes.
//
// Identity: the group, the operator, the changes and EventTime (see
// occurrence).
func (f refFields) groupInfoChanged(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	c := GroupChanges{
		Name:         f.optStringPtr("Name"),
		Introduction: f.optStringPtr("Introduction"),
		Notification: f.optStringPtr("Notification"),
		FaceURL:      f.optStringPtr("FaceUrl"),
	}
	for _, item := range f.objects("UserDefinedDataList") {
		key := item.optStringPtr("Key")
		value := item.optStringPtr("Value")
		if key == nil || value == nil {
			continue
		}
		if c.Custom == nil {
			c.Custom = map[string]string{}
		}
		c.Custom[*key] = *value
	}
	ev := &Event{
		Type:      TypeGroupInfoChanged,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Operator:  f.optString("Operator_Account"),
	}
	if c.Name != nil || c.Introduction != nil || c.Notification != nil || c.FaceURL != nil || c.Custom != nil {
		ev.Changes = &c
	}
	// Its fields are strings and a map of strings: it always encodes.
	changes, _ := json.Marshal(ev.Changes)
	return ev, group + "\x00" + ev.Operator + "\x00" + string(changes) + "\x00" + f.occurrence(req), nil
}

// optStringPtr is an optional string, nil when absent or of another type;
// an empty string is kept, as a value that was cleared.
func (f refFields) optStringPtr(name string) *string {
	raw, ok := f.get(name)
	if !ok || raw[0] != '"' {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return &s
}

// statuses maps the IM's Info.Action to Event.Status.
var refStatuses = map[string]string{
	"login":      StatusLogin,
	"logout":     StatusLogout,
	"disconnect": StatusDisconnect,
}

// stateChange is State.StateChange: a user logged in, logged out or was
// disconnected. An Action other than those three (the IM has added others,
// such as a custom status being set) is acknowledged and not published,
// like a command that is not: a client is promised one of the three.
//
// Identity: the user, Action, Reason, the device's OptPlatform and
// ClientIP, and EventTime (see occurrence). The same user logs in and out
// many times, so only the time tells two changes apart.
func (f refFields) stateChange(req Request) (*Event, string, error) {
	info, err := f.object("Info")
	if err != nil {
		return nil, "", err
	}
	user, err := info.id("To_Account")
	if err != nil {
		return nil, "", badRequest("Info.%s", err.Error())
	}
	action, err := info.id("Action")
	if err != nil {
		return nil, "", badRequest("Info.%s", err.Error())
	}
	status, ok := refStatuses[strings.ToLower(action)]
	if !ok {
		return nil, "", fmt.Errorf("%w: Info.Action %s", ErrUnknownCommand, clip(strconv.Quote(action)))
	}
	var devices []Device
	for _, d := range f.objects("KickedDevice") {
		if p := d.optString("Platform"); p != "" {
			devices = append(devices, Device{Platform: p})
		}
	}
	ev := &Event{
		Type:          TypeUserStatus,
		From:          user,
		Status:        status,
		Reason:        info.optString("Reason"),
		KickedDevices: devices,
	}
	identity := strings.Join([]string{user, action, ev.Reason, req.Platform, req.ClientIP, f.occurrence(req)}, "\x00")
	return ev, identity, nil
}

// c2cReport is C2C.CallbackAfterMsgReport: Report_Account has read every
// message of its conversation with Peer_Account up to LastReadTime.
//
// Identity: reader, peer and LastReadTime. A report is a fact about a
// point in the conversation, so two reports of the same point are the same
// event, whenever they came.
func (f refFields) c2cReport() (*Event, string, error) {
	reader, err := f.id("Report_Account")
	if err != nil {
		return nil, "", err
	}
	peer, err := f.id("Peer_Account")
	if err != nil {
		return nil, "", err
	}
	read, err := f.requiredInt("LastReadTime")
	if err != nil {
		return nil, "", err
	}
	if read < 0 || read > math.MaxInt64/1000 {
		return nil, "", badRequest("LastReadTime: %d is not a time in seconds", read)
	}
	ev := &Event{
		Type:         TypeC2CRead,
		From:         reader,
		To:           peer,
		LastReadTime: read * 1000,
		Unread:       f.unread(),
	}
	return ev, reader + "\x00" + peer + "\x00" + strconv.FormatInt(read, 10), nil
}

// occurrence is the part of an event's identity that says when it
// happened, for the events that have no identity of their own (a status
// change, a join, a leave, a profile change, a group's end): the IM's
// EventTime, the same in a retry of the event and different in the next
// event alike. Schema versions without EventTime give nothing that tells a
// retry from a second event alike, so the receive time stands in and such
// a callback is never taken for a repeat: publishing a retried one twice
// is harmless for these events (they state what is now true), while
// taking a second real one for a repeat would lose it (a user who left and
// joined again would look gone).
func (f refFields) occurrence(req Request) string {
	if t, ok := f.millis("EventTime"); ok && t > 0 {
		return "t" + strconv.FormatInt(t, 10)
	}
	return "r" + strconv.FormatInt(req.Received.UnixNano(), 10)
}

// object is a required JSON object.
func (f refFields) object(name string) (refFields, error) {
	raw, ok := f.get(name)
	if !ok {
		return nil, badRequest("%s: required object is missing", name)
	}
	var o refFields
	if raw[0] != '{' || json.Unmarshal(raw, &o) != nil {
		return nil, badRequest("%s: want object, got %s", name, refKind(raw))
	}
	return o, nil
}

// objects is an optional array of objects. Anything else is left out, as
// an optional field of an unexpected type is: the whole field when it is
// not an array, an entry that is not an object.
func (f refFields) objects(name string) []refFields {
	raw, ok := f.get(name)
	if !ok || raw[0] != '[' {
		return nil
	}
	var entries []json.RawMessage
	if json.Unmarshal(raw, &entries) != nil {
		return nil
	}
	list := make([]refFields, 0, len(entries))
	for _, e := range entries {
		var o refFields
		if e[0] == '{' && json.Unmarshal(e, &o) == nil {
			list = append(list, o)
		}
	}
	return list
}
