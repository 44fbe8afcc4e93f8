package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// The callbacks after something already there changed: a message edited
// or reacted to a moment after it was sent, a community's topics, a
// member's role, a group's owner and attributes, and who is in the
// audio-video group's room.

// The demo's community and audio-video groups, from groups.
const (
	communityID = "@TGS#_@TGS#cQVLVHIM62CJ"
	roomID      = "@TGS#aXJDZEAE9"
)

var (
	reactions = []string{"👍", "❤️", "😂", "🎉", "👀"}
	edits     = []string{"(edited) see you at 4?", "(edited) the build is green again", "(edited) lunch at 1?", "typo fixed", "(edited) shipping it tomorrow"}
	topics    = []string{"Release notes", "Help desk", "Off topic", "Design reviews"}
	nameCards = []string{"Team lead", "On call", "Guest", "Moderator"}
	attrKeys  = []string{"stage", "mic_seats", "pinned", "theme"}
)

// extensions is what the IM keeps of one message's extension: its version
// and its keys.
type extensions struct {
	seq  int64
	keys map[string]string
}

// groupModified: the sender edits a group message sent a moment before.
func (g *generator) groupModified(now time.Time) call {
	ref := lately(g.r, g.recent)
	body := map[string]any{
		"CallbackCommand":  cmdGroupModify,
		"Operator_Account": ref.from,
		"GroupId":          ref.group,
		"TopicId":          ref.topic,
		"MsgSeq":           ref.seq,
		"MsgBody":          textBody(pick(g.r, edits)),
		"EventTime":        now.UnixMilli(),
	}
	return call{cmd: cmdGroupModify, body: encode(body)}
}

// c2cModified: the sender edits a one-to-one message sent a moment before.
func (g *generator) c2cModified(now time.Time) call {
	ref := lately(g.r, g.c2c)
	return call{cmd: cmdC2CModify, body: encode(map[string]any{
		"CallbackCommand":  cmdC2CModify,
		"Operator_Account": ref.from,
		"From_Account":     ref.from,
		"To_Account":       ref.to,
		"MsgSeq":           ref.seq,
		"MsgRandom":        ref.random,
		"MsgTime":          now.Unix() - 1,
		"MsgKey":           ref.key,
		"CloudCustomData":  "",
		"MsgBody":          textBody(pick(g.r, edits)),
		"EventTime":        now.UnixMilli(),
	})}
}

// groupExtension: a member reacts to a recent group message, or takes a
// reaction back; now and then every reaction is cleared. The IM keeps no
// extension on audio-video and community groups' messages.
func (g *generator) groupExtension(now time.Time) call {
	var can []groupRef
	for _, ref := range g.recent {
		if ref.typ != "AVChatRoom" && ref.typ != "Community" {
			can = append(can, ref)
		}
	}
	if len(can) == 0 {
		return g.groupSend(now)
	}
	ref := lately(g.r, can)
	body := map[string]any{
		"CallbackCommand": cmdGroupExtension,
		"GroupId":         ref.group,
		"MsgSeq":          ref.seq,
		"EventTime":       now.UnixMilli(),
	}
	g.react(ref.extID(), body)
	return call{cmd: cmdGroupExtension, body: encode(body)}
}

// c2cExtension: a reaction to a recent one-to-one message.
func (g *generator) c2cExtension(now time.Time) call {
	ref := lately(g.r, g.c2c)
	body := map[string]any{
		"CallbackCommand": cmdC2CExtension,
		"From_Account":    ref.from,
		"To_Account":      ref.to,
		"MsgKey":          ref.key,
		"EventTime":       now.UnixMilli(),
	}
	g.react(ref.extID(), body)
	return call{cmd: cmdC2CExtension, body: encode(body)}
}

// react changes the extension of the message named id, as the IM does:
// each change is the message's next version, and each key set or deleted
// carries it. It fills body's OperateType, ExtensionList and Seq.
func (g *generator) react(id string, body map[string]any) {
	x := g.ext[id]
	if x == nil {
		x = &extensions{keys: map[string]string{}}
		g.ext[id] = x
	}
	x.seq++
	op, list := 1, []map[string]any{}
	switch n := g.r.IntN(10); {
	case n == 0 && len(x.keys) > 0:
		op = 3
		clear(x.keys)
	case n < 3 && len(x.keys) > 0:
		op = 2
		for _, k := range slices.Sorted(maps.Keys(x.keys))[:1] {
			delete(x.keys, k)
			list = append(list, map[string]any{"Key": k, "Value": "", "Seq": x.seq})
		}
	default:
		k := pick(g.r, reactions)
		who := pick(g.r, users)
		if v := x.keys[k]; v != "" && !slices.Contains(strings.Split(v, ","), who) {
			who = v + "," + who
		}
		x.keys[k] = who
		list = append(list, map[string]any{"Key": k, "Value": who, "Seq": x.seq})
	}
	body["OperateType"], body["ExtensionList"], body["Seq"] = op, list, x.seq
}

// lately is one of the last few of list: a message sent a moment before.
func lately[T any](r *rand.Rand, list []T) T {
	return list[len(list)-1-r.IntN(min(5, len(list)))]
}

// extID names a group message's extensions in generator.ext.
func (r groupRef) extID() string { return fmt.Sprintf("g %s %d", r.group, r.seq) }

// extID names a one-to-one message's extensions in generator.ext.
func (r c2cRef) extID() string { return "c " + r.key }

// forget drops the extensions of a message the demo no longer reacts to
// (recalled, or too old to be picked), so that ext stays as small as the
// lists of recent messages.
func (g *generator) forget(id string) { delete(g.ext, id) }

// roomPresence: a member of the audio-video group's room comes online or
// drops off.
func (g *generator) roomPresence(now time.Time) call {
	u := pick(g.r, users)
	body := map[string]any{
		"CallbackCommand": cmdMemberState,
		"GroupId":         roomID,
		"MemberList":      memberList([]string{u}),
		"EventTime":       now.UnixMilli(),
	}
	if g.room[u] {
		delete(g.room, u)
		body["EventType"], body["EventCause"] = "Offline", pick(g.r, []string{"Quit", "HeartbeatInterrupt"})
	} else {
		g.room[u] = true
		body["EventType"], body["EventCause"] = "Online", pick(g.r, []string{"Join", "HeartbeatRecover"})
	}
	return call{cmd: cmdMemberState, body: encode(body)}
}

// groupChange is one of the rarer changes, each in turn: the community's
// topic made, renamed or ended; a member's role or name card; a group
// passed to another owner; the room's attributes.
func (g *generator) groupChange(now time.Time) call {
	g.changes++
	switch g.changes % 4 {
	case 0:
		return g.topicChange(now)
	case 1:
		return g.memberField(now)
	case 2:
		return g.ownerChange(now)
	default:
		return g.attrChange(now)
	}
}

// topicChange is the next step of the demo's topic's life: made, renamed
// twice, ended.
func (g *generator) topicChange(now time.Time) call {
	owner := g.ownerOf(communityID)
	g.topicSteps++
	if g.topic == "" {
		g.groupNo++
		g.topic = fmt.Sprintf("%s@TOPIC#_demo%d", communityID, g.groupNo)
		return call{cmd: cmdTopicCreate, body: encode(map[string]any{
			"CallbackCommand":     cmdTopicCreate,
			"GroupId":             communityID,
			"TopicId":             g.topic,
			"Operator_Account":    owner,
			"Owner_Account":       owner,
			"Type":                "Community",
			"Name":                pick(g.r, topics),
			"UserDefinedDataList": []map[string]any{},
			"EventTime":           now.UnixMilli(),
		})}
	}
	if g.topicSteps%4 == 0 {
		topic := g.topic
		g.topic = ""
		return call{cmd: cmdTopicDestroyed, body: encode(map[string]any{
			"CallbackCommand": cmdTopicDestroyed,
			"GroupId":         communityID,
			"Type":            "Community",
			"TopicIdList":     []string{topic},
			"EventTime":       now.UnixMilli(),
		})}
	}
	return call{cmd: cmdTopicInfo, body: encode(map[string]any{
		"CallbackCommand":  cmdTopicInfo,
		"GroupId":          communityID,
		"TopicId":          g.topic,
		"Type":             "Community",
		"Operator_Account": owner,
		"Name":             pick(g.r, topics),
		"EventTime":        now.UnixMilli(),
	})}
}

// memberField: the owner makes a member an admin or a member again, or
// gives them a name card.
func (g *generator) memberField(now time.Time) call {
	grp := pick(g.r, groups)
	ms := g.members[grp.id]
	if len(ms) < 2 || grp.typ == "AVChatRoom" {
		return g.attrChange(now)
	}
	body := map[string]any{
		"CallbackCommand":  cmdMemberField,
		"GroupId":          grp.id,
		"Type":             grp.typ,
		"Operator_Account": ms[0],
		"Member_Account":   pick(g.r, ms[1:]),
		"EventTime":        now.UnixMilli(),
	}
	if g.r.IntN(2) == 0 {
		body["Role"] = pick(g.r, []string{"Admin", "Member"})
	} else {
		body["NameCard"] = pick(g.r, nameCards)
	}
	return call{cmd: cmdMemberField, body: encode(body)}
}

// ownerChange: a group's owner passes it to another member, who is its
// owner (its first member) from then on.
func (g *generator) ownerChange(now time.Time) call {
	grp := pick(g.r, groups)
	ms := g.members[grp.id]
	if len(ms) < 2 || grp.typ == "AVChatRoom" {
		return g.attrChange(now)
	}
	i := 1 + g.r.IntN(len(ms)-1)
	old, owner := ms[0], ms[i]
	ms = slices.Clone(ms)
	ms[0], ms[i] = owner, old
	g.members[grp.id] = ms
	return call{cmd: cmdOwnerChange, body: encode(map[string]any{
		"CallbackCommand":  cmdOwnerChange,
		"GroupId":          grp.id,
		"Type":             grp.typ,
		"Operator_Account": old,
		"OldOwner_Account": old,
		"NewOwner_Account": owner,
		"EventTime":        now.UnixMilli(),
	})}
}

// attrChange: the room's host sets, changes or removes its attributes.
func (g *generator) attrChange(now time.Time) call {
	op := "modify"
	changed := []map[string]any{}
	switch n := g.r.IntN(10); {
	case n == 0 && len(g.attrs) > 0:
		op = "clear"
		clear(g.attrs)
	case n < 3 && len(g.attrs) > 0:
		op = "delete"
		k := slices.Sorted(maps.Keys(g.attrs))[0]
		delete(g.attrs, k)
		changed = append(changed, map[string]any{"key": k, "value": ""})
	default:
		if len(g.attrs) == 0 {
			op = "set"
		}
		k := pick(g.r, attrKeys)
		g.attrs[k] = fmt.Sprint(g.r.IntN(8))
		changed = append(changed, map[string]any{"key": k, "value": g.attrs[k]})
	}
	return call{cmd: cmdGroupAttr, body: encode(map[string]any{
		"CallbackCommand":  cmdGroupAttr,
		"GroupId":          roomID,
		"Type":             "AVChatRoom",
		"Operator_Account": g.ownerOf(roomID),
		"OptionType":       op,
		"GroupAttr":        changed,
		"EventTime":        now.UnixMilli(),
	})}
}

// ownerOf is group id's owner: its first member.
func (g *generator) ownerOf(id string) string {
	if ms := g.members[id]; len(ms) > 0 {
		return ms[0]
	}
	return "admin"
}

func textBody(text string) []map[string]any {
	return []map[string]any{{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": text}}}
}

// groupInfoChanged: a member changes the group's name, introduction,
// notification or photo.
func (g *generator) groupInfoChanged(now time.Time) call {
	grp := pick(g.r, groups)
	body := map[string]any{
		"CallbackCommand":  cmdGroupInfo,
		"GroupId":          grp.id,
		"Type":             grp.typ,
		"Operator_Account": pick(g.r, []string{"admin", pick(g.r, users)}),
		"EventTime":        now.UnixMilli(),
	}
	switch g.r.IntN(4) {
	case 0:
		body["Name"] = pick(g.r, groupNames)
	case 1:
		body["Introduction"] = pick(g.r, intros)
	case 2:
		body["Notification"] = pick(g.r, notifications)
	default:
		body["FaceUrl"] = fmt.Sprintf("https://example.com/group/face-%d.png", g.r.IntN(100))
	}
	return call{cmd: cmdGroupInfo, body: encode(body)}
}

// groupDestroyed disbands a short-lived group (the demo's own groups stay).
func (g *generator) groupDestroyed(now time.Time) call {
	g.groupNo++
	owner := pick(g.r, users)
	ms := []string{owner}
	for _, u := range users {
		if u != owner && g.r.IntN(3) == 0 {
			ms = append(ms, u)
		}
	}
	return call{cmd: cmdGroupDestroyed, body: encode(map[string]any{
		"CallbackCommand": cmdGroupDestroyed,
		"GroupId":         fmt.Sprintf("@TGS#3TMP%05X", g.groupNo),
		"Type":            pick(g.r, []string{"Work", "Meeting", "Public"}),
		"Owner_Account":   owner,
		"Name":            pick(g.r, groupNames),
		"MemberList":      memberList(ms),
		"EventTime":       now.UnixMilli(),
	})}
}
