package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// The IM's callback commands the demo sends, named as the IM documents them.
const (
	cmdGroupSend       = "Group.CallbackAfterSendMsg"
	cmdGroupBeforeSend = "Group.CallbackBeforeSendMsg"
	cmdGroupRecall     = "Group.CallbackAfterRecallMsg"
	cmdC2CSend         = "C2C.CallbackAfterSendMsg"
	cmdC2CWithdraw     = "C2C.CallbackAfterMsgWithDraw"
	cmdC2CRead         = "C2C.CallbackAfterMsgReport"
	cmdState           = "State.StateChange"
	cmdMemberJoin      = "Group.CallbackAfterNewMemberJoin"
	cmdMemberExit      = "Group.CallbackAfterMemberExit"
	cmdReadReceipt     = "Group.CallbackAfterReadReceipt"
	cmdGroupDestroyed  = "Group.CallbackAfterGroupDestroyed"
	cmdGroupInfo       = "Group.CallbackAfterGroupInfoChanged"
	cmdGroupCreate     = "Group.CallbackAfterCreateGroup"

	cmdGroupModify    = "Group.CallbackAfterModifyMsg"
	cmdC2CModify      = "C2C.CallbackAfterModifyMsg"
	cmdGroupExtension = "Group.CallbackAfterGroupMsgExtension"
	cmdC2CExtension   = "C2C.CallbackAfterC2CMsgExtension"
	cmdMemberField    = "Group.CallbackAfterMemberFieldChanged"
	cmdOwnerChange    = "Group.CallbackAfterChangeGroupOwner"
	cmdTopicCreate    = "Group.CallbackAfterCreateTopic"
	cmdTopicDestroyed = "Group.CallbackAfterTopicDestroyed"
	cmdTopicInfo      = "Group.CallbackAfterTopicInfoChanged"
	cmdGroupAttr      = "Group.CallbackAfterGroupAttrChanged"
	cmdMemberState    = "Group.CallbackOnMemberStateChange"
)

// The page user's turns: every kickEvery callbacks an admin removes the
// user of the dashboard's IM login from one of its groups, and inviteAfter
// callbacks later a member invites them back, so that a page that signed
// in at any time sees a removal soon.
const (
	kickEvery   = 30
	inviteAfter = 15
)

// changeEvery callbacks one of the rarer changes of a group comes, each
// kind in turn (groupChange).
const changeEvery = 40

var (
	platforms = []string{"iOS", "Android", "Web", "Windows", "Mac", "RESTAPI"}
	devices   = []string{"iOS", "Android", "Web", "Windows", "iPad", "Mac", "Linux"}
	users     = []string{"jared", "Jonh", "leah", "mina", "omar", "priya", "sven", "yuki", "zoe", "admin"}
	groups    = []struct{ id, typ, topic string }{
		{"@TGS#2J4SZEAEL", "Public", ""},
		{"@TGS#1NVTZEAE4", "Work", ""},
		{"1213456", "Public", ""},
		{"@TGS#_@TGS#cQVLVHIM62CJ", "Community", "@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic"},
		{"@TGS#_@TGS#cQVLVHIM62CJ", "Community", "@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_Announcements"},
		{"@TGS#3FKDZEAEQ", "Meeting", ""},
		{"@TGS#aXJDZEAE9", "AVChatRoom", ""},
	}
	texts = []string{"red packet", "see you at 3?", "👍", "the build is green", "who has the slides?",
		"lunch?", "shipping it", "can someone review my PR", "good morning!", "meeting moved to Friday"}
	groupNames    = []string{"Friday lunch", "Launch war room", "Book club", "Offsite 2026", "Hackathon team"}
	notifications = []string{"Standup moves to 9:30 from Monday", "Please keep this group on topic", "Release freeze starts Thursday"}
	intros        = []string{"Where the mobile team talks shop", "Questions about the new API go here", "Everything about the offsite"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// call is one callback: its command and its JSON body, and what the demo
// says of it when it is posted ("" for most).
type call struct {
	cmd, body string
	note      string
}

// generator makes a plausible stream of callbacks: group and one-to-one
// messages mostly, recalls of messages it sent a little earlier, users
// logging in and out, members joining and leaving, reads, and group
// changes. A group message is first put to the app's backend
// (Group.CallbackBeforeSendMsg); the IM sends it, and its
// Group.CallbackAfterSendMsg follows, only when the verdict allows it.
type generator struct {
	r *rand.Rand
	// ext is each message's extension version and keys, by its identity;
	// topic the demo's own community topic while it exists; room who is
	// online in the audio-video group; attrs its custom attributes.
	ext   map[string]*extensions
	topic string
	room  map[string]bool
	attrs map[string]string
	// changes counts the rarer changes made, topicSteps the steps of the
	// demo's topic's life.
	changes, topicSteps int
	seq                 map[string]int64 // the last MsgSeq of each group or topic
	seqBase             int64            // where this run's MsgSeqs start
	recent              []groupRef       // group messages that may be recalled
	c2c                 []c2cRef
	c2cNext             int64
	online              map[string]bool
	members             map[string][]string // group id -> its members
	held                map[string]any      // the group message a pending verdict decides on
	heldAt              time.Time
	allowed             []call // sends whose verdict allowed them, to post next
	groupNo             int    // the last short-lived group made

	// pageUser is the user the dashboard signs in to the IM as, "" for
	// none; made is how many callbacks next has made; kickedFrom the
	// group they were last removed from, "" once invited back.
	pageUser   string
	made       int
	kickedFrom string
	creates    []call // the groups' creation, posted first
}

type groupRef struct {
	group, typ, topic, from string
	seq                     int64
}

type c2cRef struct {
	from, to, key string
	seq           int64
	random        uint32
}

// newGenerator returns a generator whose groups are made first, each
// with about half of the users in it, and pageUser (when not "") in every
// one.
func newGenerator(r *rand.Rand, pageUser string) *generator {
	g := &generator{r: r, seq: map[string]int64{}, online: map[string]bool{}, members: map[string][]string{}, pageUser: pageUser,
		ext: map[string]*extensions{}, room: map[string]bool{}, attrs: map[string]string{}}
	for _, grp := range groups {
		if _, ok := g.members[grp.id]; ok {
			continue
		}
		for _, u := range users {
			if u == pageUser || r.IntN(2) == 0 {
				g.members[grp.id] = append(g.members[grp.id], u)
			}
		}
		if pageUser != "" && !slices.Contains(users, pageUser) {
			g.members[grp.id] = append(g.members[grp.id], pageUser)
		}
		g.creates = append(g.creates, g.groupCreated(grp.id, grp.typ))
	}
	return g
}

// next returns the next callback.
func (g *generator) next(now time.Time) call {
	if len(g.creates) > 0 {
		c := g.creates[0]
		g.creates = g.creates[1:]
		return c
	}
	g.made++
	if c, ok := g.pageUserTurn(now); ok {
		return c
	}
	if g.made%changeEvery == changeEvery/2 {
		return g.groupChange(now)
	}
	if len(g.allowed) > 0 {
		c := g.allowed[0]
		g.allowed = g.allowed[1:]
		return c
	}
	n := g.r.IntN(100)
	for _, k := range mix {
		if n < k.below && (k.needs == nil || k.needs(g)) {
			return k.make(g, now)
		}
	}
	return g.groupSend(now)
}

// mix is the share of each kind of callback, out of 100: a draw n below
// an entry's bound and above the one before picks it, and the first
// whose needs are met of those after it when they are not (a recall
// needs a message to recall). A draw past them all is a group message.
var mix = []struct {
	below int
	needs func(*generator) bool
	make  func(*generator, time.Time) call
}{
	{6, (*generator).hasRecent, (*generator).groupRecall},
	{9, (*generator).hasC2C, (*generator).c2cWithdraw},
	{25, nil, (*generator).c2cSend},
	{31, nil, (*generator).stateChange},
	{35, nil, (*generator).memberJoin},
	{39, nil, (*generator).memberExit},
	{44, (*generator).hasC2C, (*generator).msgReport},
	{48, (*generator).hasRecent, (*generator).readReceipt},
	{50, nil, (*generator).groupInfoChanged},
	{51, nil, (*generator).groupDestroyed},
	{66, nil, (*generator).beforeSend},
	{70, (*generator).hasRecent, (*generator).groupModified},
	{72, (*generator).hasC2C, (*generator).c2cModified},
	{76, (*generator).hasRecent, (*generator).groupExtension},
	{77, (*generator).hasC2C, (*generator).c2cExtension},
	{80, nil, (*generator).roomPresence},
}

// hasRecent reports whether there is a group message to recall, read,
// edit or extend.
func (g *generator) hasRecent() bool { return len(g.recent) > 0 }

// hasC2C reports whether there is a one-to-one message to withdraw, read,
// edit or extend.
func (g *generator) hasC2C() bool { return len(g.c2c) > 0 }

// verdict tells the generator what the app's backend answered to the last
// Group.CallbackBeforeSendMsg: an allowed message is sent, and its
// Group.CallbackAfterSendMsg comes next; a denied one is not.
func (g *generator) verdict(allow bool) {
	if g.held != nil && allow {
		g.allowed = append(g.allowed, g.sent(g.heldAt, g.held))
	}
	g.held = nil
}

// groupMessage is a group message about to be sent: the fields the before
// and after callbacks share.
func (g *generator) groupMessage(now time.Time) map[string]any {
	grp := pick(g.r, groups)
	from := pick(g.r, users)
	m := map[string]any{
		"GroupId":          grp.id,
		"Type":             grp.typ,
		"From_Account":     from,
		"Operator_Account": from,
		"Random":           g.r.Uint32(),
		"OnlineOnlyFlag":   0,
		"MsgBody":          g.msgBody(),
		"CloudCustomData":  "",
	}
	if grp.topic != "" {
		m["TopicId"] = grp.topic
		m["EventTime"] = fmt.Sprint(now.UnixMilli())
	}
	return m
}

// beforeSend asks the app's backend whether a group message may be sent;
// the message's own callback waits for the verdict.
func (g *generator) beforeSend(now time.Time) call {
	m := g.groupMessage(now)
	g.held, g.heldAt = m, now
	body := map[string]any{"CallbackCommand": cmdGroupBeforeSend}
	for k, v := range m {
		body[k] = v
	}
	return call{cmd: cmdGroupBeforeSend, body: encode(body)}
}

func (g *generator) groupSend(now time.Time) call {
	return g.sent(now, g.groupMessage(now))
}

// sent is the Group.CallbackAfterSendMsg of message m, which now has its
// sequence number.
func (g *generator) sent(now time.Time, m map[string]any) call {
	body := make(map[string]any, len(m)+4)
	for k, v := range m {
		body[k] = v
	}
	grp, _ := body["GroupId"].(string)
	topic, _ := body["TopicId"].(string)
	typ, _ := body["Type"].(string)
	// The IM never gives a group's MsgSeq twice, and the hub takes a
	// repeat for the same event: counting from 1 again, a second run
	// within the dedupe window would be dropped as duplicates. Each run
	// counts from its first message's time in milliseconds, beyond what
	// an earlier run could have reached unless it sent more than a
	// thousand messages a second to one group.
	if g.seqBase == 0 {
		g.seqBase = now.UnixMilli()
	}
	if _, ok := g.seq[grp+topic]; !ok {
		g.seq[grp+topic] = g.seqBase
	}
	g.seq[grp+topic]++
	seq := g.seq[grp+topic]
	body["CallbackCommand"] = cmdGroupSend
	body["MsgSeq"] = seq
	body["MsgTime"] = now.Unix()
	if topic != "" {
		body["MsgId"] = fmt.Sprintf("144115213033478435-%d-%d", now.Unix(), g.r.Uint32())
	}
	from, _ := body["From_Account"].(string)
	g.recent = append(g.recent, groupRef{grp, typ, topic, from, seq})
	if len(g.recent) > 30 {
		g.forget(g.recent[0].extID())
		g.recent = g.recent[1:]
	}
	return call{cmd: cmdGroupSend, body: encode(body)}
}

func (g *generator) groupRecall(now time.Time) call {
	i := g.r.IntN(len(g.recent))
	ref := g.recent[i]
	g.recent = slices.Delete(g.recent, i, i+1)
	g.forget(ref.extID())
	body := map[string]any{
		"CallbackCommand":  cmdGroupRecall,
		"Operator_Account": pick(g.r, []string{"admin", pick(g.r, users)}),
		"Type":             ref.typ,
		"GroupId":          ref.group,
		"MsgSeqList":       []map[string]any{{"MsgSeq": ref.seq}},
	}
	if ref.topic != "" {
		body["TopicId"] = ref.topic
		body["EventTime"] = fmt.Sprint(now.UnixMilli())
	}
	return call{cmd: cmdGroupRecall, body: encode(body)}
}

func (g *generator) c2cSend(now time.Time) call {
	from, to := g.twoUsers()
	g.c2cNext++
	random := g.r.Uint32()
	key := fmt.Sprintf("%d_%d_%d", g.c2cNext, random, now.Unix())
	body := map[string]any{
		"CallbackCommand": cmdC2CSend,
		"From_Account":    from,
		"To_Account":      to,
		"MsgSeq":          g.c2cNext,
		"MsgRandom":       random,
		"MsgTime":         now.Unix(),
		"MsgKey":          key,
		"OnlineOnlyFlag":  0,
		"SendMsgResult":   0,
		"ErrorInfo":       "send msg succeed",
		"UnreadMsgNum":    g.r.IntN(12),
		"MsgBody":         g.msgBody(),
		"EventTime":       now.UnixMilli(),
	}
	if g.r.IntN(20) == 0 {
		body["SendMsgResult"] = 20006
		body["ErrorInfo"] = "blocked by the recipient's settings"
	}
	g.c2c = append(g.c2c, c2cRef{from, to, key, g.c2cNext, random})
	if len(g.c2c) > 30 {
		g.forget(g.c2c[0].extID())
		g.c2c = g.c2c[1:]
	}
	return call{cmd: cmdC2CSend, body: encode(body)}
}

func (g *generator) c2cWithdraw(time.Time) call {
	i := g.r.IntN(len(g.c2c))
	ref := g.c2c[i]
	g.c2c = slices.Delete(g.c2c, i, i+1)
	g.forget(ref.extID())
	return call{cmd: cmdC2CWithdraw, body: encode(map[string]any{
		"CallbackCommand": cmdC2CWithdraw,
		"From_Account":    ref.from,
		"To_Account":      ref.to,
		"MsgKey":          ref.key,
		"UnreadMsgNum":    g.r.IntN(12),
	})}
}

// msgReport: the recipient of a recent one-to-one message reads it.
func (g *generator) msgReport(now time.Time) call {
	ref := pick(g.r, g.c2c)
	return call{cmd: cmdC2CRead, body: encode(map[string]any{
		"CallbackCommand": cmdC2CRead,
		"Report_Account":  ref.to,
		"Peer_Account":    ref.from,
		"LastReadTime":    now.Unix(),
		"UnreadMsgNum":    g.r.IntN(8),
	})}
}

// stateChange logs a user in or out: one who is offline logs in (on a new
// SDK, sometimes pushing another device of theirs off), one who is online
// logs out or loses the network.
func (g *generator) stateChange(now time.Time) call {
	u := pick(g.r, users)
	info := map[string]any{"To_Account": u}
	body := map[string]any{"CallbackCommand": cmdState, "EventTime": now.UnixMilli(), "Info": info}
	if !g.online[u] {
		g.online[u] = true
		info["Action"], info["Reason"] = "Login", "Register"
		if g.r.IntN(4) == 0 {
			body["KickedDevice"] = []map[string]any{{"Platform": pick(g.r, devices)}}
		}
	} else {
		delete(g.online, u)
		switch g.r.IntN(4) {
		case 0:
			info["Action"], info["Reason"] = "Disconnect", "LinkClose"
		case 1:
			info["Action"], info["Reason"] = "Disconnect", "TimeOut"
		default:
			info["Action"], info["Reason"] = "Logout", "Unregister"
		}
	}
	return call{cmd: cmdState, body: encode(body)}
}

// groupCreated is a group's Group.CallbackAfterCreateGroup
// (https://www.tencentcloud.com/document/product/1047/34369): its first
// member owns it, the others are its MemberList. The demo's groups exist
// before it starts, as far as its traffic goes; the IM says so to a hub
// that follows its membership with these.
func (g *generator) groupCreated(id, typ string) call {
	ms := g.members[id]
	if len(ms) == 0 {
		ms = []string{pick(g.r, users)}
		g.members[id] = ms
	}
	return call{cmd: cmdGroupCreate, body: encode(map[string]any{
		"CallbackCommand":     cmdGroupCreate,
		"GroupId":             id,
		"Type":                typ,
		"Operator_Account":    ms[0],
		"Owner_Account":       ms[0],
		"Name":                pick(g.r, groupNames),
		"CreateGroupNum":      1,
		"MemberList":          memberList(ms[1:]),
		"UserDefinedDataList": []map[string]any{},
		"EventTime":           time.Now().UnixMilli(),
	})}
}

// pageUserTurn is the page user's removal or return, when one is due.
func (g *generator) pageUserTurn(now time.Time) (call, bool) {
	if g.pageUser == "" {
		return call{}, false
	}
	switch {
	case g.made%kickEvery == 0:
		var in []string
		for _, grp := range groups {
			if slices.Contains(g.members[grp.id], g.pageUser) && len(g.members[grp.id]) > 1 && !slices.Contains(in, grp.id) {
				in = append(in, grp.id)
			}
		}
		if len(in) == 0 {
			return call{}, false
		}
		id := pick(g.r, in)
		g.kickedFrom = id
		g.members[id] = slices.DeleteFunc(slices.Clone(g.members[id]), func(u string) bool { return u == g.pageUser })
		c := g.exit(now, id, g.pageUser, "Kicked", "admin")
		c.note = fmt.Sprintf("admin removed %s from %s: the dashboard's IM login shows it", g.pageUser, id)
		return c, true
	case g.made%kickEvery == inviteAfter && g.kickedFrom != "":
		id := g.kickedFrom
		g.kickedFrom = ""
		if slices.Contains(g.members[id], g.pageUser) {
			return call{}, false // back already, by the traffic's own joins
		}
		operator := pick(g.r, g.members[id])
		g.members[id] = append(g.members[id], g.pageUser)
		c := g.join(now, id, []string{g.pageUser}, "Invited", operator)
		c.note = fmt.Sprintf("%s invited %s back to %s", operator, g.pageUser, id)
		return c, true
	}
	return call{}, false
}

// typeOf is the type of group id.
func typeOf(id string) string {
	for _, grp := range groups {
		if grp.id == id {
			return grp.typ
		}
	}
	return "Public"
}

// memberJoin adds one or two users who are not yet members of a group:
// by applying, or invited by a member.
func (g *generator) memberJoin(now time.Time) call {
	grp := pick(g.r, groups)
	var outside []string
	for _, u := range users {
		if !slices.Contains(g.members[grp.id], u) {
			outside = append(outside, u)
		}
	}
	if len(outside) == 0 {
		return g.memberExit(now)
	}
	g.r.Shuffle(len(outside), func(i, j int) { outside[i], outside[j] = outside[j], outside[i] })
	joined := outside[:1+g.r.IntN(min(2, len(outside)))]
	joinType, operator := "Apply", joined[0]
	if len(g.members[grp.id]) > 0 && (len(joined) > 1 || g.r.IntN(2) == 0) {
		joinType, operator = "Invited", pick(g.r, g.members[grp.id])
	}
	g.members[grp.id] = append(g.members[grp.id], joined...)
	return g.join(now, grp.id, joined, joinType, operator)
}

// join is the Group.CallbackAfterNewMemberJoin of users joining group id.
func (g *generator) join(now time.Time, id string, joined []string, joinType, operator string) call {
	return call{cmd: cmdMemberJoin, body: encode(map[string]any{
		"CallbackCommand":  cmdMemberJoin,
		"GroupId":          id,
		"Type":             typeOf(id),
		"JoinType":         joinType,
		"Operator_Account": operator,
		"NewMemberList":    memberList(joined),
		"EventTime":        now.UnixMilli(),
	})}
}

// memberExit: a member quits, or an admin removes one.
func (g *generator) memberExit(now time.Time) call {
	grp := pick(g.r, groups)
	ms := g.members[grp.id]
	if len(ms) < 2 {
		return g.memberJoin(now)
	}
	i := g.r.IntN(len(ms))
	left := ms[i]
	g.members[grp.id] = slices.Delete(slices.Clone(ms), i, i+1)
	exitType, operator := "Quit", left
	if g.r.IntN(2) == 0 {
		exitType, operator = "Kicked", pick(g.r, g.members[grp.id])
	}
	return g.exit(now, grp.id, left, exitType, operator)
}

// exit is the Group.CallbackAfterMemberExit of user leaving group id.
func (g *generator) exit(now time.Time, id, user, exitType, operator string) call {
	return call{cmd: cmdMemberExit, body: encode(map[string]any{
		"CallbackCommand":  cmdMemberExit,
		"GroupId":          id,
		"Type":             typeOf(id),
		"ExitType":         exitType,
		"Operator_Account": operator,
		"ExitMemberList":   memberList([]string{user}),
		"EventTime":        now.UnixMilli(),
	})}
}

// readReceipt: members read recent messages of a group that asked for
// read receipts.
func (g *generator) readReceipt(now time.Time) call {
	ref := pick(g.r, g.recent)
	total := max(len(g.members[ref.group]), 2)
	var receipts []map[string]any
	for seq := max(ref.seq-1, 1); seq <= ref.seq; seq++ {
		read := 1 + g.r.IntN(total-1)
		receipts = append(receipts, map[string]any{
			"MsgSeq": seq, "ReadNum": read, "UnreadNum": total - read,
			"ReadReceiptMembers": memberList([]string{pick(g.r, users)}),
		})
	}
	return call{cmd: cmdReadReceipt, body: encode(map[string]any{
		"CallbackCommand":     cmdReadReceipt,
		"GroupId":             ref.group,
		"Type":                ref.typ,
		"GroupMsgReceiptList": receipts,
		"EventTime":           fmt.Sprint(now.UnixMilli()),
	})}
}

func (g *generator) twoUsers() (string, string) {
	from, to := pick(g.r, users), pick(g.r, users)
	for to == from {
		to = pick(g.r, users)
	}
	return from, to
}

func memberList(us []string) []map[string]any {
	l := make([]map[string]any, len(us))
	for i, u := range us {
		l[i] = map[string]any{"Member_Account": u}
	}
	return l
}

// msgBody is one element of a type drawn by how often apps send them.
func (g *generator) msgBody() []map[string]any {
	el := func(t string, c map[string]any) []map[string]any {
		return []map[string]any{{"MsgType": t, "MsgContent": c}}
	}
	switch n := g.r.IntN(100); {
	case n < 60:
		return el("TIMTextElem", map[string]any{"Text": pick(g.r, texts)})
	case n < 68:
		return el("TIMFaceElem", map[string]any{"Index": g.r.IntN(50), "Data": "content"})
	case n < 74:
		return el("TIMImageElem", map[string]any{"UUID": fmt.Sprintf("1853095_%08X", g.r.Uint32()), "ImageFormat": 1,
			"ImageInfoArray": []map[string]any{
				{"Type": 1, "Size": 1853095, "Width": 2448, "Height": 3264, "URL": "https://example.com/image/original.jpg"},
				{"Type": 3, "Size": 8031, "Width": 144, "Height": 192, "URL": "https://example.com/image/thumb.jpg"}}})
	case n < 78:
		return el("TIMLocationElem", map[string]any{"Desc": "someinfo", "Latitude": 29.340656774469956, "Longitude": 116.77497920478824})
	case n < 84:
		return el("TIMCustomElem", map[string]any{"Data": `{"kind":"order","id":` + fmt.Sprint(g.r.IntN(9999)) + `}`, "Desc": "order shared", "Ext": "", "Sound": ""})
	case n < 88:
		return el("TIMSoundElem", map[string]any{"Url": "https://example.com/sound.m4a", "Size": 62351, "Second": 1 + g.r.IntN(59), "Download_Flag": 2})
	case n < 92:
		return el("TIMFileElem", map[string]any{"Url": "https://example.com/report.pdf", "FileSize": 1773552, "FileName": "report.pdf", "Download_Flag": 2})
	case n < 96:
		return el("TIMVideoFileElem", map[string]any{"VideoUrl": "https://example.com/video.mp4", "VideoSize": 1194603, "VideoSecond": 5 + g.r.IntN(60), "VideoFormat": "mp4"})
	default:
		return el("TIMRelayElem", map[string]any{"Title": "Chat history of jared and leah", "MsgNum": 3,
			"CompatibleText": "Your version does not support merged messages", "AbstractList": []string{"jared: hi", "leah: hello", "jared: lunch?"}})
	}
}

func encode(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
