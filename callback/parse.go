package callback

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The commands that are published. Any other command is acknowledged and
// counted, not published.
const (
	CommandGroupSend   = "Group.CallbackAfterSendMsg"
	CommandGroupRecall = "Group.CallbackAfterRecallMsg"
	CommandC2CSend     = "C2C.CallbackAfterSendMsg"
	CommandC2CWithdraw = "C2C.CallbackAfterMsgWithDraw"
)

// Commands lists the published commands.
var Commands = []string{CommandGroupSend, CommandGroupRecall, CommandC2CSend, CommandC2CWithdraw}

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
func Parse(req Request, body []byte) (*Event, []string, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, badRequest("body is not a JSON object")
	}
	var raw rawCallback
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, nil, decodeError(err)
	}
	if raw.CallbackCommand != nil && *raw.CallbackCommand != req.Command {
		return nil, nil, badRequest("CallbackCommand %q in the body differs from %q in the query", *raw.CallbackCommand, req.Command)
	}
	var (
		ev       *Event
		channels []string
		identity string
		err      error
	)
	switch req.Command {
	case CommandGroupSend:
		ev, identity, err = raw.groupSend()
	case CommandGroupRecall:
		ev, identity, err = raw.groupRecall()
	case CommandC2CSend:
		ev, identity, err = raw.c2cSend()
	case CommandC2CWithdraw:
		ev, identity, err = raw.c2cWithdraw()
	default:
		return nil, nil, ErrUnknownCommand
	}
	if err != nil {
		return nil, nil, err
	}
	if ev.GroupID != "" {
		channels = []string{"group:" + ev.GroupID, "app"}
	} else {
		channels = []string{"user:" + ev.From}
		if ev.To != ev.From {
			channels = append(channels, "user:"+ev.To)
		}
		channels = append(channels, "app")
	}
	ev.App = req.App
	ev.Command = req.Command
	ev.ID = eventID(req.App, req.Command, identity)
	ev.Platform = req.Platform
	ev.ClientIP = req.ClientIP
	ev.Received = req.Received.UnixMilli()
	switch {
	case raw.EventTime != nil && *raw.EventTime > 0:
		ev.Time = int64(*raw.EventTime)
	case raw.MsgTime != nil && *raw.MsgTime > 0:
		ev.Time = *raw.MsgTime * 1000
	default:
		ev.Time = ev.Received
	}
	return ev, channels, nil
}

// eventID is stable across retries of one IM event, and differs between
// apps and commands (a send and the recall of the same message are two
// events).
func eventID(app, command, identity string) string {
	h := sha256.New()
	h.Write([]byte(app))
	h.Write([]byte{0})
	h.Write([]byte(command))
	h.Write([]byte{0})
	h.Write([]byte(identity))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// rawCallback holds every field of the four commands. Pointers tell a field
// that is absent from one that is zero.
type rawCallback struct {
	CallbackCommand *string         `json:"CallbackCommand"`
	GroupID         *string         `json:"GroupId"`
	Type            *string         `json:"Type"`
	TopicID         *string         `json:"TopicId"`
	From            *string         `json:"From_Account"`
	To              *string         `json:"To_Account"`
	Operator        *string         `json:"Operator_Account"`
	Random          *int64          `json:"Random"`
	MsgRandom       *int64          `json:"MsgRandom"`
	MsgSeq          *int64          `json:"MsgSeq"`
	MsgTime         *int64          `json:"MsgTime"`
	MsgKey          *string         `json:"MsgKey"`
	MsgID           *string         `json:"MsgId"`
	OnlineOnlyFlag  *int64          `json:"OnlineOnlyFlag"`
	MsgBody         json.RawMessage `json:"MsgBody"`
	CloudCustomData *string         `json:"CloudCustomData"`
	EventTime       *millis         `json:"EventTime"`
	MsgSeqList      *[]rawSeq       `json:"MsgSeqList"`
	UnreadMsgNum    *int64          `json:"UnreadMsgNum"`
	SendMsgResult   *int64          `json:"SendMsgResult"`
	ErrorInfo       *string         `json:"ErrorInfo"`
}

type rawSeq struct {
	MsgSeq *int64  `json:"MsgSeq"`
	MsgID  *string `json:"MsgId"`
}

// millis is a millisecond timestamp that the IM sends as a number in some
// schema versions and as a decimal string in others.
type millis int64

func (m *millis) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if unq, err := strconv.Unquote(s); err == nil && len(s) > 0 && s[0] == '"' {
		s = unq
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return badRequest("EventTime: want integer milliseconds, got %s", b)
	}
	*m = millis(n)
	return nil
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func num(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// id checks a required identifier that becomes part of a channel name.
func id(name string, p *string) (string, error) {
	switch {
	case p == nil:
		return "", badRequest("%s: required string is missing", name)
	case *p == "":
		return "", badRequest("%s: must not be empty", name)
	case len(*p) > maxIDLen:
		return "", badRequest("%s: longer than %d bytes", name, maxIDLen)
	}
	return *p, nil
}

func (r *rawCallback) body() (json.RawMessage, error) {
	if len(r.MsgBody) == 0 || string(r.MsgBody) == "null" {
		return nil, badRequest("MsgBody: required array is missing")
	}
	if r.MsgBody[0] != '[' {
		return nil, badRequest("MsgBody: want array")
	}
	return r.MsgBody, nil
}

func (r *rawCallback) groupSend() (*Event, string, error) {
	group, err := id("GroupId", r.GroupID)
	if err != nil {
		return nil, "", err
	}
	if r.MsgSeq == nil {
		return nil, "", badRequest("MsgSeq: required integer is missing")
	}
	body, err := r.body()
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:            TypeGroupSent,
		GroupID:         group,
		GroupType:       str(r.Type),
		TopicID:         str(r.TopicID),
		From:            str(r.From),
		Operator:        str(r.Operator),
		Messages:        []MessageRef{{Seq: *r.MsgSeq, ID: str(r.MsgID), Random: num(r.Random)}},
		Body:            body,
		CloudCustomData: str(r.CloudCustomData),
		OnlineOnly:      num(r.OnlineOnlyFlag) == 1,
	}
	return ev, group + "\x00" + ev.TopicID + "\x00" + strconv.FormatInt(*r.MsgSeq, 10), nil
}

func (r *rawCallback) groupRecall() (*Event, string, error) {
	group, err := id("GroupId", r.GroupID)
	if err != nil {
		return nil, "", err
	}
	if r.MsgSeqList == nil || len(*r.MsgSeqList) == 0 {
		return nil, "", badRequest("MsgSeqList: required non-empty array is missing")
	}
	refs := make([]MessageRef, len(*r.MsgSeqList))
	seqs := make([]int64, len(refs))
	for i, s := range *r.MsgSeqList {
		if s.MsgSeq == nil {
			return nil, "", badRequest("MsgSeqList[%d].MsgSeq: required integer is missing", i)
		}
		refs[i] = MessageRef{Seq: *s.MsgSeq, ID: str(s.MsgID)}
		seqs[i] = *s.MsgSeq
	}
	ev := &Event{
		Type:      TypeGroupRecalled,
		GroupID:   group,
		GroupType: str(r.Type),
		TopicID:   str(r.TopicID),
		Operator:  str(r.Operator),
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

func (r *rawCallback) c2cParties() (from, to string, err error) {
	if from, err = id("From_Account", r.From); err != nil {
		return "", "", err
	}
	if to, err = id("To_Account", r.To); err != nil {
		return "", "", err
	}
	return from, to, nil
}

func (r *rawCallback) c2cSend() (*Event, string, error) {
	from, to, err := r.c2cParties()
	if err != nil {
		return nil, "", err
	}
	key := str(r.MsgKey)
	if key == "" {
		key = str(r.MsgID)
	}
	if key == "" {
		return nil, "", badRequest("MsgKey: required string is missing (and no MsgId either)")
	}
	body, err := r.body()
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:            TypeC2CSent,
		From:            from,
		To:              to,
		Messages:        []MessageRef{{Seq: num(r.MsgSeq), ID: str(r.MsgID), Key: str(r.MsgKey), Random: num(r.MsgRandom)}},
		Body:            body,
		CloudCustomData: str(r.CloudCustomData),
		OnlineOnly:      num(r.OnlineOnlyFlag) == 1,
		Unread:          r.UnreadMsgNum,
		SendResult:      num(r.SendMsgResult),
	}
	if ev.SendResult != 0 {
		ev.ErrorInfo = str(r.ErrorInfo)
	}
	return ev, from + "\x00" + to + "\x00" + key, nil
}

func (r *rawCallback) c2cWithdraw() (*Event, string, error) {
	from, to, err := r.c2cParties()
	if err != nil {
		return nil, "", err
	}
	key, err := id("MsgKey", r.MsgKey)
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:     TypeC2CRecalled,
		From:     from,
		To:       to,
		Messages: []MessageRef{{Key: key, ID: str(r.MsgID)}},
		Unread:   r.UnreadMsgNum,
	}
	return ev, from + "\x00" + to + "\x00" + key, nil
}

// decodeError turns a json error into a message naming the field.
func decodeError(err error) error {
	var bad *BadRequestError
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &bad):
		return bad
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return badRequest("%s: want %s, got %s", field, kindName(typ.Type), typ.Value)
	case errors.As(err, &syn):
		return badRequest("body is not valid JSON: %v (at byte %d)", syn, syn.Offset)
	default:
		return badRequest("body is not valid JSON: %v", err)
	}
}

func kindName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int64, reflect.Int:
		return "integer"
	case reflect.String:
		return "string"
	case reflect.Slice:
		return "array"
	case reflect.Struct:
		return "object"
	}
	return strings.ToLower(t.Kind().String())
}
