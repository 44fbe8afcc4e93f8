package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

var (
	platforms = []string{"iOS", "Android", "Web", "Windows", "Mac", "RESTAPI"}
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
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// generator makes a plausible stream of callbacks: sends mostly, with
// recalls of messages it sent a little earlier.
type generator struct {
	r       *rand.Rand
	seq     map[string]int64
	recent  []groupRef // group messages that may be recalled
	c2c     []c2cRef
	c2cNext int64
}

type groupRef struct {
	group, typ, topic string
	seq               int64
}

type c2cRef struct {
	from, to, key string
}

func newGenerator(r *rand.Rand) *generator {
	return &generator{r: r, seq: map[string]int64{}}
}

// next returns the command and body of the next callback.
func (g *generator) next(now time.Time) (string, string) {
	switch n := g.r.IntN(100); {
	case n < 8 && len(g.recent) > 0:
		return g.groupRecall(now)
	case n < 12 && len(g.c2c) > 0:
		return g.c2cWithdraw(now)
	case n < 30:
		return g.c2cSend(now)
	default:
		return g.groupSend(now)
	}
}

func (g *generator) groupSend(now time.Time) (string, string) {
	grp := pick(g.r, groups)
	g.seq[grp.id+grp.topic]++
	seq := g.seq[grp.id+grp.topic]
	from := pick(g.r, users)
	body := map[string]any{
		"CallbackCommand":  "Group.CallbackAfterSendMsg",
		"GroupId":          grp.id,
		"Type":             grp.typ,
		"From_Account":     from,
		"Operator_Account": from,
		"Random":           g.r.Uint32(),
		"MsgSeq":           seq,
		"MsgTime":          now.Unix(),
		"OnlineOnlyFlag":   0,
		"MsgBody":          g.msgBody(),
		"CloudCustomData":  "",
	}
	if grp.topic != "" {
		body["TopicId"] = grp.topic
		body["MsgId"] = fmt.Sprintf("144115213033478435-%d-%d", now.Unix(), g.r.Uint32())
		body["EventTime"] = fmt.Sprint(now.UnixMilli())
	}
	g.recent = append(g.recent, groupRef{grp.id, grp.typ, grp.topic, seq})
	if len(g.recent) > 30 {
		g.recent = g.recent[1:]
	}
	return "Group.CallbackAfterSendMsg", encode(body)
}

func (g *generator) groupRecall(now time.Time) (string, string) {
	i := g.r.IntN(len(g.recent))
	ref := g.recent[i]
	g.recent = append(g.recent[:i], g.recent[i+1:]...)
	body := map[string]any{
		"CallbackCommand":  "Group.CallbackAfterRecallMsg",
		"Operator_Account": pick(g.r, []string{"admin", pick(g.r, users)}),
		"Type":             ref.typ,
		"GroupId":          ref.group,
		"MsgSeqList":       []map[string]any{{"MsgSeq": ref.seq}},
	}
	if ref.topic != "" {
		body["TopicId"] = ref.topic
		body["EventTime"] = fmt.Sprint(now.UnixMilli())
	}
	return "Group.CallbackAfterRecallMsg", encode(body)
}

func (g *generator) c2cSend(now time.Time) (string, string) {
	from, to := pick(g.r, users), pick(g.r, users)
	for to == from {
		to = pick(g.r, users)
	}
	g.c2cNext++
	random := g.r.Uint32()
	key := fmt.Sprintf("%d_%d_%d", g.c2cNext, random, now.Unix())
	body := map[string]any{
		"CallbackCommand": "C2C.CallbackAfterSendMsg",
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
	g.c2c = append(g.c2c, c2cRef{from, to, key})
	if len(g.c2c) > 30 {
		g.c2c = g.c2c[1:]
	}
	return "C2C.CallbackAfterSendMsg", encode(body)
}

func (g *generator) c2cWithdraw(time.Time) (string, string) {
	i := g.r.IntN(len(g.c2c))
	ref := g.c2c[i]
	g.c2c = append(g.c2c[:i], g.c2c[i+1:]...)
	return "C2C.CallbackAfterMsgWithDraw", encode(map[string]any{
		"CallbackCommand": "C2C.CallbackAfterMsgWithDraw",
		"From_Account":    ref.from,
		"To_Account":      ref.to,
		"MsgKey":          ref.key,
		"UnreadMsgNum":    g.r.IntN(12),
	})
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
