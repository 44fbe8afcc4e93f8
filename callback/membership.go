package callback

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"

	"github.com/imhub/imhub/hub/broker"
)

// The callbacks that change who is in a group keep the IM's membership,
// as the hub knows it, current (docs/protocol.md#channels): the creation
// of a group, the member joins and exits and the disbandings, each told
// before its event is published.

// Membership is told what the callbacks change of who is in a group,
// before the events that say so are published: *membership.View is the
// hub's. An app whose groups do not follow the IM's membership is
// ignored by it.
type Membership interface {
	// Created: a group of groupType (the IM's Type: "Public", "Work",
	// "AVChatRoom", …) was made with users, its owner and first members,
	// as members. Anyone may join an audio-video group (AVChatRoom):
	// every user of the app is admitted to it, as the IM's 10007 answer
	// says of one.
	// owner, when not "", is one of users.
	Created(ctx context.Context, app, group, groupType, owner string, users ...string) error
	Joined(ctx context.Context, app, group string, users ...string) error
	Left(ctx context.Context, app, group string, users ...string) error
	Destroyed(ctx context.Context, app, group string) error
}

// GroupTypeAV is the IM's type of an audio-video group, which every user
// of the app may join.
const GroupTypeAV = "AVChatRoom"

// ChangeKind is what an event does to a group's members.
type ChangeKind uint8

// The kinds of change.
const (
	ChangeNone      ChangeKind = iota
	ChangeJoined               // group.member.joined and group.created: Users are members
	ChangeLeft                 // group.member.left: Users are not
	ChangeDestroyed            // group.destroyed: nobody is
)

// MemberChange is what one event changes of who is in a group.
type MemberChange struct {
	Kind  ChangeKind
	Group string
	Users []string // of ChangeJoined and ChangeLeft
	// GroupType is the new group's type, of a group.created (a
	// ChangeJoined whose Users are its owner and first members, none
	// maybe, when it is an audio-video group).
	GroupType string
	// Owner is a group.created's owner, one of Users; "" when it names
	// none.
	Owner string
}

// Names says whether the change takes user out of the group: every user
// when the group is disbanded.
func (c MemberChange) Names(user string) bool {
	switch c.Kind {
	case ChangeDestroyed:
		return true
	case ChangeLeft:
		for _, u := range c.Users {
			if u == user {
				return true
			}
		}
	}
	return false
}

// The type fields of the events that change membership, as Event.Encode
// writes them: an event without one of these is not looked at further.
var changeMarks = [...]struct {
	mark []byte
	typ  string
	kind ChangeKind
}{
	{[]byte(`"type":"` + TypeGroupMemberLeft + `"`), TypeGroupMemberLeft, ChangeLeft},
	{[]byte(`"type":"` + TypeGroupDestroyed + `"`), TypeGroupDestroyed, ChangeDestroyed},
	{[]byte(`"type":"` + TypeGroupMemberJoined + `"`), TypeGroupMemberJoined, ChangeJoined},
	{[]byte(`"type":"` + TypeGroupCreated + `"`), TypeGroupCreated, ChangeJoined},
}

// MemberChangeOf reads what the event data, as published, changes of a
// group's members. The bytes are first looked through for the type, which
// costs little and passes nearly every event; one that has it is decoded
// for its own top-level type, group_id and members, so that a message
// whose text, or a custom event whose data, holds the same words changes
// nothing.
func MemberChangeOf(data []byte) (MemberChange, bool) {
	kind, typ := ChangeNone, ""
	for _, m := range changeMarks {
		if bytes.Contains(data, m.mark) {
			kind, typ = m.kind, m.typ
			break
		}
	}
	if kind == ChangeNone {
		return MemberChange{}, false
	}
	var top map[string]json.RawMessage // its keys exactly as written
	if json.Unmarshal(data, &top) != nil {
		return MemberChange{}, false
	}
	var got, group string
	if json.Unmarshal(top["type"], &got) != nil || got != typ ||
		json.Unmarshal(top["group_id"], &group) != nil || group == "" {
		return MemberChange{}, false
	}
	c := MemberChange{Kind: kind, Group: group}
	if kind == ChangeDestroyed {
		return c, true
	}
	if m, ok := top["members"]; ok && json.Unmarshal(m, &c.Users) != nil {
		return MemberChange{}, false
	}
	if typ == TypeGroupCreated {
		// The owner is a member too; it may be the only one.
		var owner string
		if o, ok := top["owner"]; ok && json.Unmarshal(o, &owner) == nil && owner != "" {
			c.Owner = owner
			if !slices.Contains(c.Users, owner) {
				c.Users = append([]string{owner}, c.Users...)
			}
		}
		if t, ok := top["group_type"]; ok && json.Unmarshal(t, &c.GroupType) != nil {
			return MemberChange{}, false
		}
		if c.GroupType == GroupTypeAV {
			// Open to all, whoever it was made with.
			return c, true
		}
	}
	if len(c.Users) == 0 {
		return MemberChange{}, false
	}
	return c, true
}

// learn tells m of c, for app.
func learn(ctx context.Context, m Membership, app string, c MemberChange) error {
	switch c.Kind {
	case ChangeJoined:
		if c.GroupType != "" {
			return m.Created(ctx, app, c.Group, c.GroupType, c.Owner, c.Users...)
		}
		return m.Joined(ctx, app, c.Group, c.Users...)
	case ChangeLeft:
		return m.Left(ctx, app, c.Group, c.Users...)
	case ChangeDestroyed:
		return m.Destroyed(ctx, app, c.Group)
	}
	return nil
}

// LearningNext is what a Learning publishes to: a broker, as a spool's
// Next is.
type LearningNext interface {
	Publisher
	Ready() error
}

// Learning publishes through Next, telling Membership what each
// message's event changes of a group's members. An exit or a disbanding
// is told first: every node asked after the event is published answers
// as it leaves them. A join or a creation is told only once Next has
// published it, and not when Next drops it as a duplicate: the IM's
// retry of a join that an exit or a disbanding followed must not let
// anyone back in. Until it is told, a node asks the IM, which knows the
// join already. Put in front of the broker, behind the spool, it also
// tells of the events the spool publishes once the broker is back. A
// change that cannot be told (the store away) is logged, and the message
// published all the same: the event is not lost, and each node applies
// it as it receives it.
type Learning struct {
	Next       LearningNext
	Membership Membership
	Logger     *slog.Logger
}

// Publish tells an exit or a disbanding, publishes m, then tells a join
// or a creation that was not a duplicate.
func (l *Learning) Publish(ctx context.Context, m broker.Message) (broker.Result, error) {
	c, ok := MemberChangeOf(m.Data)
	if ok && c.Kind != ChangeJoined {
		l.tell(ctx, m.App, c)
	}
	res, err := l.Next.Publish(ctx, m)
	if ok && c.Kind == ChangeJoined && err == nil && !res.Duplicate {
		l.tell(ctx, m.App, c)
	}
	return res, err
}

// tell stores c, logging a failure.
func (l *Learning) tell(ctx context.Context, app string, c MemberChange) {
	if err := learn(ctx, l.Membership, app, c); err != nil {
		l.logger().Warn("a change of membership was not stored; each node applies it as the event reaches it",
			"app", clip(app), "group", clip(c.Group), "err", err)
	}
}

// Ready is Next's.
func (l *Learning) Ready() error { return l.Next.Ready() }

func (l *Learning) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.Default()
	}
	return l.Logger
}
