package callback

import (
	"fmt"
	"strconv"
)

// The callbacks after a message changed: edited (its body and custom
// data replaced) or its extension keys set, deleted or cleared. Each
// names the message as a send does, so that a client finds the message
// it already shows.

// groupModified is Group.CallbackAfterModifyMsg: MsgBody is the message's
// new body.
//
// Identity: the message (group, topic, MsgSeq) and EventTime (see
// occurrence): one message may be edited many times, and each edit is an
// event of its own.
func (f fields) groupModified(req Request) (*Event, string, error) {
	group, seq, body, err := f.groupMessageBody()
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:            TypeGroupModified,
		GroupID:         group,
		GroupType:       f.optString("Type"),
		TopicID:         f.optString("TopicId"),
		From:            f.optString("From_Account"),
		Operator:        f.optString("Operator_Account"),
		Messages:        []MessageRef{{Seq: seq, ID: f.optString("MsgId")}},
		Body:            body,
		CloudCustomData: f.optString("CloudCustomData"),
	}
	return ev, groupMessageIdentity(ev, seq) + "\x00" + f.occurrence(req), nil
}

// c2cModified is C2C.CallbackAfterModifyMsg.
//
// Identity: the message (parties and MsgKey, or MsgId) and EventTime, as
// groupModified.
func (f fields) c2cModified(req Request) (*Event, string, error) {
	from, to, key, body, err := f.c2cMessageBody()
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:            TypeC2CModified,
		From:            from,
		To:              to,
		Operator:        f.optString("Operator_Account"),
		Messages:        []MessageRef{f.c2cRef()},
		Body:            body,
		CloudCustomData: f.optString("CloudCustomData"),
	}
	return ev, from + "\x00" + to + "\x00" + key + "\x00" + f.occurrence(req), nil
}

// groupExtension is Group.CallbackAfterGroupMsgExtension.
//
// Identity: the message (group, topic, MsgSeq) and the extension version
// the change made (Seq): the IM gives each change of a message's
// extensions the next version, so two changes never share one.
func (f fields) groupExtension() (*Event, string, error) {
	group, seq, err := f.groupMessage()
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupExtension,
		GroupID:   group,
		GroupType: f.optString("Type"),
		TopicID:   f.optString("TopicId"),
		Messages:  []MessageRef{{Seq: seq, ID: f.optString("MsgId")}},
	}
	if err := f.extensionChange(ev); err != nil {
		return nil, "", err
	}
	return ev, groupMessageIdentity(ev, seq) + "\x00" + strconv.FormatInt(ev.ExtensionSeq, 10), nil
}

// c2cExtension is C2C.CallbackAfterC2CMsgExtension.
//
// Identity: the message (parties and MsgKey, or MsgId) and Seq, as
// groupExtension.
func (f fields) c2cExtension() (*Event, string, error) {
	from, to, key, err := f.c2cMessage()
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:     TypeC2CExtension,
		From:     from,
		To:       to,
		Messages: []MessageRef{f.c2cRef()},
	}
	if err := f.extensionChange(ev); err != nil {
		return nil, "", err
	}
	return ev, from + "\x00" + to + "\x00" + key + "\x00" + strconv.FormatInt(ev.ExtensionSeq, 10), nil
}

// groupMessageIdentity names a group message: its group, topic and seq.
func groupMessageIdentity(ev *Event, seq int64) string {
	return ev.GroupID + "\x00" + ev.TopicID + "\x00" + strconv.FormatInt(seq, 10)
}

// c2cRef is every identity the IM gave of a one-to-one message.
func (f fields) c2cRef() MessageRef {
	seq, _ := f.optInt("MsgSeq")
	random, _ := f.optInt("MsgRandom")
	return MessageRef{Seq: seq, ID: f.optString("MsgId"), Key: f.optString("MsgKey"), Random: random}
}

// operations are the IM's OperateType values of an extension change.
var operations = map[int64]string{1: OperationSet, 2: OperationDelete, 3: OperationClear}

// extensionChange reads what an extension callback changed into ev: the
// operation (OperateType), the version after it (Seq), both required, and
// the keys (ExtensionList), each of which must have its Key.
func (f fields) extensionChange(ev *Event) error {
	op, err := f.requiredInt("OperateType")
	if err != nil {
		return err
	}
	var ok bool
	if ev.Operation, ok = operations[op]; !ok {
		return fmt.Errorf("%w: OperateType %d", ErrUnknownCommand, op)
	}
	if ev.ExtensionSeq, err = f.requiredInt("Seq"); err != nil {
		return err
	}
	const name = "ExtensionList"
	raw, ok := f.get(name)
	if !ok {
		return nil
	}
	list, ok := objectListOf(raw)
	if !ok {
		return badRequest("%s: want array of objects, got %s", name, kind(raw))
	}
	if err := tooLong(name, len(list), "keys"); err != nil {
		return err
	}
	for i, item := range list {
		key, err := item.id("Key")
		if err != nil {
			return badRequest("%s[%d].%s", name, i, err.Error())
		}
		seq, _ := item.optInt("Seq")
		ev.Extensions = append(ev.Extensions, Extension{Key: key, Value: item.optString("Value"), Seq: seq})
	}
	return nil
}
