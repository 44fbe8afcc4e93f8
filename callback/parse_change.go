package callback

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The callbacks after a group came to be or changed hands, and after its
// members' fields, its attributes or, in an audio-video group, its
// members' presence changed.

// groupCreated is Group.CallbackAfterCreateGroup. The owner and the first
// members get it on their own channels too, as members who join do. Both
// may be absent: the app's admin can create a group without an owner, and
// with no member but its owner.
//
// Identity: the group and EventTime (see occurrence): a group id may be
// used again once the group is disbanded.
func (f fields) groupCreated(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	owner, err := f.optID("Owner_Account")
	if err != nil {
		return nil, "", err
	}
	members, err := f.optMembers("MemberList")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupCreated,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Operator:  f.optString("Operator_Account"),
		Owner:     owner,
		Name:      f.optString("Name"),
		Members:   members,
	}
	return ev, group + "\x00" + f.occurrence(req), nil
}

// memberChanged is Group.CallbackAfterMemberFieldChanged: one member's
// role or name card, whichever the IM sent. The member is Member_Account
// on the English page and Modified_Account on the Chinese one
// (https://cloud.tencent.com/document/product/269/105353); either is
// taken.
//
// Identity: the group, the member, what changed and EventTime (see
// occurrence).
func (f fields) memberChanged(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	name := "Member_Account"
	if _, ok := f.get(name); !ok {
		if _, ok := f.get("Modified_Account"); ok {
			name = "Modified_Account"
		}
	}
	member, err := f.id(name)
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupMemberChange,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Operator:  f.optString("Operator_Account"),
		Members:   []string{member},
		Role:      f.optString("Role"),
		NameCard:  f.optStringPtr("NameCard"),
	}
	card := "-"
	if ev.NameCard != nil {
		card = "=" + *ev.NameCard
	}
	return ev, strings.Join([]string{group, member, ev.Role, card, f.occurrence(req)}, "\x00"), nil
}

// ownerChanged is Group.CallbackAfterChangeGroupOwner.
//
// Identity: the group, both owners and EventTime (see occurrence).
func (f fields) ownerChanged(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	owner, err := f.id("NewOwner_Account")
	if err != nil {
		return nil, "", err
	}
	previous, err := f.optID("OldOwner_Account")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:          TypeGroupOwnerChanged,
		GroupID:       group,
		GroupType:     f.optString("Type"),
		Operator:      f.optString("Operator_Account"),
		Owner:         owner,
		PreviousOwner: previous,
	}
	return ev, strings.Join([]string{group, owner, previous, f.occurrence(req)}, "\x00"), nil
}

// attrsChanged is Group.CallbackAfterGroupAttrChanged: OptionType says
// what was done ("set" replaces every attribute, "modify" some, "delete"
// removes some, "clear" all), GroupAttr with which attributes.
//
// Identity: the group, the operation, the attributes and EventTime (see
// occurrence).
func (f fields) attrsChanged(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	op, err := f.id("OptionType")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupAttrsChanged,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Operator:  f.optString("Operator_Account"),
		Operation: strings.ToLower(op),
	}
	attrs := f.objects("GroupAttr")
	if err := tooLong("GroupAttr", len(attrs), "attributes"); err != nil {
		return nil, "", err
	}
	for _, item := range attrs {
		key := item.optStringPtr("key")
		if key == nil {
			continue
		}
		if ev.Attrs == nil {
			ev.Attrs = map[string]string{}
		}
		ev.Attrs[*key] = item.optString("value")
	}
	// A map of strings always encodes.
	encoded, _ := json.Marshal(ev.Attrs)
	return ev, strings.Join([]string{group, ev.Operation, string(encoded), f.occurrence(req)}, "\x00"), nil
}

// memberStatuses are the IM's EventType values of a member state change.
var memberStatuses = map[string]string{"online": StatusOnline, "offline": StatusOffline}

// memberStatus is Group.CallbackOnMemberStateChange: members of an
// audio-video group went offline or came back. A kind of change the IM
// may add later is not published, as a status change's unknown Action is
// not.
//
// Identity: the group, the members (in any order), the status, the cause
// and EventTime (see occurrence).
func (f fields) memberStatus(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	kind, err := f.id("EventType")
	if err != nil {
		return nil, "", err
	}
	status, ok := memberStatuses[strings.ToLower(kind)]
	if !ok {
		return nil, "", fmt.Errorf("%w: EventType %s", ErrUnknownCommand, clip(strconv.Quote(kind)))
	}
	members, err := f.members("MemberList")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupMemberStatus,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Members:   members,
		Status:    status,
		Reason:    f.optString("EventCause"),
	}
	return ev, strings.Join([]string{group, memberIdentity(members), status, ev.Reason, f.occurrence(req)}, "\x00"), nil
}

// optID is an id that may be absent or empty ("" then); one that is
// there is held to id's other rules, since it becomes a channel name.
func (f fields) optID(name string) (string, error) {
	if raw, ok := f.get(name); !ok || string(raw) == `""` {
		return "", nil
	}
	return f.id(name)
}
