package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// decodeBody reads a callback body as a JSON object, numbers kept as
// written.
func decodeBody(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("the body is null, not a JSON object")
	}
	return m, nil
}

// summarize says in a few words what a callback is about, for a log line.
// It reads the fields the IM documents for each command and never fails: a
// field that is missing or of another type shows as empty.
func summarize(cmd string, m map[string]any) string {
	s := func(k string) string { return str(m[k]) }
	group := s("GroupId")
	if t := s("TopicId"); t != "" {
		group = t
	}
	switch cmd {
	case cmdGroupSend, cmdGroupBeforeSend:
		return fmt.Sprintf("%s in %s: %s", s("From_Account"), group, msgText(m["MsgBody"]))
	case cmdC2CSend, "C2C.CallbackBeforeSendMsg":
		return fmt.Sprintf("%s to %s: %s", s("From_Account"), s("To_Account"), msgText(m["MsgBody"]))
	case cmdGroupRecall:
		n := 0
		if l, ok := m["MsgSeqList"].([]any); ok {
			n = len(l)
		}
		return fmt.Sprintf("%s recalled %d message(s) in %s", s("Operator_Account"), n, group)
	case cmdC2CWithdraw:
		return fmt.Sprintf("%s withdrew message %s to %s", s("From_Account"), s("MsgKey"), s("To_Account"))
	case cmdC2CRead:
		return fmt.Sprintf("%s read the chat with %s (%s unread)", s("Report_Account"), s("Peer_Account"), s("UnreadMsgNum"))
	case cmdState:
		info, _ := m["Info"].(map[string]any)
		out := fmt.Sprintf("%s %s (%s)", str(info["To_Account"]), str(info["Action"]), str(info["Reason"]))
		if kicked, ok := m["KickedDevice"].([]any); ok && len(kicked) > 0 {
			var ps []string
			for _, k := range kicked {
				if km, ok := k.(map[string]any); ok {
					ps = append(ps, str(km["Platform"]))
				}
			}
			out += ", pushing off " + strings.Join(ps, ", ")
		}
		return out
	case cmdMemberJoin:
		return fmt.Sprintf("%s joined %s (%s, by %s)", members(m["NewMemberList"]), group, s("JoinType"), s("Operator_Account"))
	case cmdMemberExit:
		return fmt.Sprintf("%s left %s (%s, by %s)", members(m["ExitMemberList"]), group, s("ExitType"), s("Operator_Account"))
	case cmdReadReceipt:
		var rs []string
		if l, ok := m["GroupMsgReceiptList"].([]any); ok {
			for _, r := range l {
				if rm, ok := r.(map[string]any); ok {
					rs = append(rs, fmt.Sprintf("#%s read by %s", str(rm["MsgSeq"]), str(rm["ReadNum"])))
				}
			}
		}
		return fmt.Sprintf("%s: %s", group, strings.Join(rs, ", "))
	case cmdGroupDestroyed:
		return fmt.Sprintf("%s %q disbanded, owner %s, members %s", group, s("Name"), s("Owner_Account"), members(m["MemberList"]))
	case cmdGroupInfo:
		var changed []string
		for _, k := range []string{"Name", "Introduction", "Notification", "FaceUrl"} {
			if v := s(k); v != "" {
				changed = append(changed, fmt.Sprintf("%s %q", k, clipText(v)))
			}
		}
		return fmt.Sprintf("%s changed %s: %s", s("Operator_Account"), group, strings.Join(changed, ", "))
	case cmdGroupModify:
		return fmt.Sprintf("%s edited #%s in %s: %s", s("Operator_Account"), s("MsgSeq"), group, msgText(m["MsgBody"]))
	case cmdC2CModify:
		return fmt.Sprintf("%s edited %s to %s: %s", s("Operator_Account"), s("MsgKey"), s("To_Account"), msgText(m["MsgBody"]))
	case cmdGroupExtension, cmdC2CExtension:
		var keys []string
		if l, ok := m["ExtensionList"].([]any); ok {
			for _, e := range l {
				if em, ok := e.(map[string]any); ok {
					keys = append(keys, fmt.Sprintf("%s=%q", str(em["Key"]), clipText(str(em["Value"]))))
				}
			}
		}
		msg := "#" + s("MsgSeq") + " in " + group
		if cmd == cmdC2CExtension {
			msg = s("MsgKey")
		}
		return fmt.Sprintf("extension of %s, operation %s, version %s: %s", msg, s("OperateType"), s("Seq"), strings.Join(keys, ", "))
	case cmdGroupCreate:
		return fmt.Sprintf("%s %q made, owner %s, members %s", group, s("Name"), s("Owner_Account"), members(m["MemberList"]))
	case cmdMemberField:
		return fmt.Sprintf("%s changed %s in %s: role %q, name card %q", s("Operator_Account"), s("Member_Account"), group, s("Role"), s("NameCard"))
	case cmdOwnerChange:
		return fmt.Sprintf("%s passed from %s to %s", group, s("OldOwner_Account"), s("NewOwner_Account"))
	case cmdTopicCreate, cmdTopicInfo:
		return fmt.Sprintf("%s: topic %q", group, s("Name"))
	case cmdTopicDestroyed:
		var ts []string
		if l, ok := m["TopicIdList"].([]any); ok {
			for _, e := range l {
				ts = append(ts, str(e))
			}
		}
		return fmt.Sprintf("topics ended in %s: %s", group, strings.Join(ts, ", "))
	case cmdGroupAttr:
		return fmt.Sprintf("%s: attributes %s by %s", group, s("OptionType"), s("Operator_Account"))
	case cmdMemberState:
		return fmt.Sprintf("%s %s in %s (%s)", members(m["MemberList"]), s("EventType"), group, s("EventCause"))
	}
	return fmt.Sprintf("%d fields", len(m))
}

// str is a JSON string or number as text; anything else is "".
func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	return ""
}

func members(v any) string {
	var names []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			if em, ok := e.(map[string]any); ok {
				names = append(names, str(em["Member_Account"]))
			}
		}
	}
	return strings.Join(names, ", ")
}

// msgText is the first element of a MsgBody: its text, or its type.
func msgText(v any) string {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return "(no body)"
	}
	el, _ := l[0].(map[string]any)
	if str(el["MsgType"]) == "TIMTextElem" {
		c, _ := el["MsgContent"].(map[string]any)
		return fmt.Sprintf("%q", clipText(str(c["Text"])))
	}
	return str(el["MsgType"])
}

// clipText keeps a log line short: 40 characters at most.
func clipText(s string) string {
	r := []rune(s)
	if len(r) <= 40 {
		return s
	}
	return string(r[:39]) + "…"
}
