package callback

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// statuses maps the IM's Info.Action to Event.Status.
var statuses = map[string]string{
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
func (f fields) stateChange(req Request) (*Event, string, error) {
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
	status, ok := statuses[strings.ToLower(action)]
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
func (f fields) c2cReport() (*Event, string, error) {
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
func (f fields) occurrence(req Request) string {
	if t, ok := f.millis("EventTime"); ok && t > 0 {
		return "t" + strconv.FormatInt(t, 10)
	}
	return "r" + strconv.FormatInt(req.Received.UnixNano(), 10)
}

// object is a required JSON object.
func (f fields) object(name string) (fields, error) {
	raw, ok := f.get(name)
	if !ok {
		return nil, badRequest("%s: required object is missing", name)
	}
	if raw[0] != '{' {
		return nil, badRequest("%s: want object, got %s", name, kind(raw))
	}
	return objectOf(nil, raw), nil
}

// objects is an optional array of objects. Anything else is left out, as
// an optional field of an unexpected type is: the whole field when it is
// not an array, an entry that is not an object.
func (f fields) objects(name string) []fields {
	raw, ok := f.get(name)
	if !ok || raw[0] != '[' {
		return nil
	}
	return objectsOf(raw)
}

// arrayObjects is the entries of the array raw that are objects.
func arrayObjects(raw []byte) []fields {
	entries := splitArray(raw)
	list := make([]fields, 0, len(entries))
	for _, e := range entries {
		if e[0] == '{' {
			list = append(list, splitObject(nil, e))
		}
	}
	return list
}

// objectList is an array whose every entry is an object or null (an entry
// without fields), as encoding/json decodes into a slice of maps; false
// for anything else.
func objectList(raw []byte) ([]fields, bool) {
	if raw[0] != '[' {
		return nil, false
	}
	entries := splitArray(raw)
	list := make([]fields, len(entries))
	for i, e := range entries {
		switch e[0] {
		case '{':
			list[i] = splitObject(nil, e)
		case 'n':
		default:
			return nil, false
		}
	}
	return list, true
}
