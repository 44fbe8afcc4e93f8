package callback

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// maxMembers bounds the members of one join or leave, each of which is a
// channel the event goes to. The IM adds and removes members in batches of
// a few hundred at most; a list far longer is not from the IM. Other lists
// of one callback (topics, extension keys, group attributes) take the same
// bound: each entry costs its parse and its bytes in every copy published.
const maxMembers = 1000

// tooLong rejects the list name when its n entries (of what) are past
// maxMembers.
func tooLong(name string, n int, what string) error {
	if n > maxMembers {
		return badRequest("%s: more than %d %s", name, maxMembers, what)
	}
	return nil
}

// memberJoin is Group.CallbackAfterNewMemberJoin.
//
// Identity: the group, the members (in any order) and EventTime (see
// occurrence): the same users may join, leave and join again.
func (f fields) memberJoin(req Request) (*Event, string, error) {
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
	return ev, group + "\x00" + memberIdentity(members) + "\x00" + f.occurrence(req), nil
}

// memberExit is Group.CallbackAfterMemberExit. The members who left get it
// on their own channel too, which is how a client learns it was kicked.
//
// Identity: the group, the members (in any order), ExitType and EventTime
// (see occurrence).
func (f fields) memberExit(req Request) (*Event, string, error) {
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
	return ev, group + "\x00" + memberIdentity(members) + "\x00" + ev.ExitType + "\x00" + f.occurrence(req), nil
}

// members reads a required, non-empty list of {"Member_Account": id}:
// each member once, in the IM's order.
func (f fields) members(name string) ([]string, error) {
	members, err := f.optMembers(name)
	if err == nil && len(members) == 0 {
		return nil, badRequest("%s: required non-empty array is missing", name)
	}
	return members, err
}

// optMembers is members for a list that may be absent or empty: nil then.
// A list that is there is held to the same rules.
func (f fields) optMembers(name string) ([]string, error) {
	raw, ok := f.get(name)
	if !ok {
		return nil, nil
	}
	list, ok := objectListOf(raw)
	if !ok {
		return nil, badRequest("%s: want array of objects, got %s", name, kind(raw))
	}
	if len(list) == 0 {
		return nil, nil
	}
	if err := tooLong(name, len(list), "members"); err != nil {
		return nil, err
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
func memberIdentity(members []string) string {
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
func (f fields) readReceipt() (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	const name = "GroupMsgReceiptList"
	raw, ok := f.get(name)
	if !ok {
		return nil, "", badRequest("%s: required non-empty array is missing", name)
	}
	list, ok := objectListOf(raw)
	if !ok {
		return nil, "", badRequest("%s: want array of objects, got %s", name, kind(raw))
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
func (f fields) groupDestroyed(req Request) (*Event, string, error) {
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
func (f fields) groupInfoChanged(req Request) (*Event, string, error) {
	group, err := f.id("GroupId")
	if err != nil {
		return nil, "", err
	}
	ev := &Event{
		Type:      TypeGroupInfoChanged,
		GroupID:   group,
		GroupType: f.optString("Type"),
		Operator:  f.optString("Operator_Account"),
		Changes:   f.profileChanges(),
	}
	return ev, changeIdentity(ev, f.occurrence(req)), nil
}

// profileChanges are the profile fields of a group or a topic that the IM
// sent as changed, nil when it sent none.
func (f fields) profileChanges() *GroupChanges {
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
	if c.Name == nil && c.Introduction == nil && c.Notification == nil && c.FaceURL == nil && c.Custom == nil {
		return nil
	}
	return &c
}

// changeIdentity is a profile change's identity: the group, the topic if
// any, the operator, the changes and when (occurrence).
func changeIdentity(ev *Event, occurrence string) string {
	// Its fields are strings and a map of strings: it always encodes.
	changes, _ := json.Marshal(ev.Changes)
	where := ev.GroupID
	if ev.TopicID != "" {
		where += "\x00" + ev.TopicID
	}
	return where + "\x00" + ev.Operator + "\x00" + string(changes) + "\x00" + occurrence
}

// optStringPtr is an optional string, nil when absent or of another type;
// an empty string is kept, as a value that was cleared.
func (f fields) optStringPtr(name string) *string {
	raw, _ := f.get(name)
	s, ok := str(raw)
	if !ok {
		return nil
	}
	return &s
}
