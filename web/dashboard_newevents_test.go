package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

// sample is the IM's documented request body of a command, as the callback
// package keeps it (callback/testdata/golden/<name>.json; each names the
// page it comes from in the callback tests), with the fields of change set
// over it: another message's sequence, a later time, the other status.
func sample(t *testing.T, name string, change map[string]any) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "callback", "testdata", "golden", name+".json"))
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.Unmarshal(b, &body), name)
	for k, v := range change {
		body[k] = v
	}
	out, err := json.Marshal(body)
	require.NoError(t, err)
	return string(out)
}

// postSample posts a documented sample under its own CallbackCommand.
func postSample(t *testing.T, addr, body string) {
	t.Helper()
	var cmd struct{ CallbackCommand string }
	require.NoError(t, json.Unmarshal([]byte(body), &cmd))
	post(t, addr, cmd.CallbackCommand, body)
}

// waitText waits until the text of the first element matching selector is
// want ("" when there is none).
func waitText(t *testing.T, ctx context.Context, selector, want string) {
	t.Helper()
	js := fmt.Sprintf(`(document.querySelector(%q)?.textContent ?? '').replace(/\s+/g, ' ').trim()`, selector)
	var got string
	require.Eventually(t, func() bool {
		got = evalString(t, ctx, js)
		return got == want
	}, 20*time.Second, 50*time.Millisecond, "%s: want %q, have %q", selector, want, got)
}

func c2cSend(from, to, key string, seq int, text string) string {
	return fmt.Sprintf(`{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":%q,"To_Account":%q,"MsgKey":%q,"MsgSeq":%d,"MsgTime":1700000000,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":%q}}]}`, from, to, key, seq, text)
}

// The IM's newer events, posted as the IM documents them, as a person sees
// them: an edited message replaced in place (a stale edit does not undo a
// newer one), reactions counted under their message as they change (a stale
// extension_seq ignored), one line for each group, role, owner, topic and
// attribute change, and audio-video room members in "Online in rooms".
func TestDashboardNewerEvents(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", secret})
	ctx := browser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+p.Addr+"/")))
	waitStatus(t, ctx, "live")

	// The messages the samples are about.
	post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSendTo("group-test-2", 53, "before the edit"))
	post(t, p.Addr, "Group.CallbackAfterSendMsg", groupSendTo("test", 10, "react to me"))
	post(t, p.Addr, "C2C.CallbackAfterSendMsg", c2cSend("jared", "Jonh", "609_690_1769771529", 609, "before the c2c edit"))
	post(t, p.Addr, "C2C.CallbackAfterSendMsg", c2cSend("user1", "user2", "93847636_1287657_1764688415", 1, "react one to one"))
	waitFeed(t, ctx, "#feed li.c2c-message-sent", "react one to one", 1)

	// Edits: in place, marked, the text before one click away.
	edited := `#feed li.group-message-sent.edited`
	postSample(t, p.Addr, sample(t, "group_msg_modified", nil))
	waitText(t, ctx, edited+" .body", "2026-03-06T02:09:35.302Z")
	require.Equal(t, 0, feedCount(t, ctx, "#feed li.group-message-modified", ""), "the edit shows on its message, not as an item of its own")
	require.False(t, evalBool(t, ctx, `document.querySelector('`+edited+` details.edit-note').open`))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(edited+` details.edit-note summary`)))
	waitText(t, ctx, edited+" details[open] .previous", "before: before the edit")
	postSample(t, p.Addr, sample(t, "group_msg_modified", map[string]any{"EventTime": 1772762999000,
		"MsgBody": []any{map[string]any{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": "the newest text"}}}}))
	waitText(t, ctx, edited+" .body", "the newest text")
	postSample(t, p.Addr, sample(t, "group_msg_modified", map[string]any{"EventTime": 1772762980000,
		"MsgBody": []any{map[string]any{"MsgType": "TIMTextElem", "MsgContent": map[string]any{"Text": "a stale text"}}}}))
	postSample(t, p.Addr, sample(t, "c2c_msg_modified", nil))
	waitText(t, ctx, "#feed li.c2c-message-sent.edited .body", "2026-01-30T11:20:26.548Z")
	// The stale edit came before the one-to-one edit: it is in by now.
	waitText(t, ctx, edited+" .body", "the newest text")
	screenshot(t, ctx, "newer-1-edits")

	// Reactions: counts under the message, live.
	reacted := `#feed li.group-message-sent:has(.reactions)`
	postSample(t, p.Addr, sample(t, "group_msg_extension_set", nil))
	waitText(t, ctx, reacted+" .reactions", "key3 12122key2 1")
	postSample(t, p.Addr, sample(t, "group_msg_extension_delete", nil))
	waitFeed(t, ctx, reacted, "react to me", 0)
	postSample(t, p.Addr, sample(t, "group_msg_extension_set", map[string]any{"Seq": 59, "EventTime": 1764688340000,
		"ExtensionList": []any{map[string]any{"Key": "👍", "Value": `["ann","bob"]`, "Seq": 59}, map[string]any{"Key": "🎉", "Value": `["ann"]`, "Seq": 59}}}))
	waitText(t, ctx, reacted+" .reactions", "👍 2🎉 1")
	postSample(t, p.Addr, sample(t, "group_msg_extension_clear", nil)) // Seq 58: older than 59
	postSample(t, p.Addr, sample(t, "c2c_msg_extension_set", nil))
	waitText(t, ctx, `#feed li.c2c-message-sent:has(.reactions) .reactions`, "k1 1k2 1k3 1")
	waitText(t, ctx, reacted+" .reactions", "👍 2🎉 1")
	screenshot(t, ctx, "newer-2-reactions")
	postSample(t, p.Addr, sample(t, "c2c_msg_extension_delete", nil))
	waitFeed(t, ctx, `#feed li.c2c-message-sent:has(.reactions)`, "", 0)

	// One line each.
	for _, c := range []struct{ golden, selector, says string }{
		{"group_created", "li.group-created", "leckie created @TGS#2J4SZEAEL “MyFirstGroup” (Public) with bob, peter"},
		{"group_member_changed", "li.group-member-changed", "123456 in @TGS#xxxx: role Admin, name card “jacky” by admin"},
		{"group_owner_changed", "li.group-owner-changed", "user2 is now the owner of @TGS#2TTV7VSII (was user1)"},
		{"topic_created", "li.group-topic-created", "topic @TOPIC#cRTE3HIM62C5 “MyFirstTopic” created in @TGS#2J4SZEAEL by group_root"},
		{"topic_info_changed", "li.group-topic-changed", "a topic of @TGS#2J4SZEAEL changed: name “TestTopic”, introduction “TestIntroduction”, notification “NewNotification”, face url “http://this.is.face.url” by leckie"},
		{"topic_destroyed", "li.group-topic-destroyed", "topics TestTopic, TestTopic_1 of @TGS#_@TGS#cQVLVHIM62CJ destroyed"},
		{"group_attr_changed", "li.group-attrs-changed", "attributes of @TGS#2J4SZEAEL set key1 “value1”, key2 “values” by leckie"},
	} {
		postSample(t, p.Addr, sample(t, c.golden, nil))
		waitText(t, ctx, "#feed "+c.selector+" .says", c.says)
	}
	title := evalString(t, ctx, `document.querySelector('#feed li.group-topic-destroyed abbr.topic').title`)
	require.Equal(t, "@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic", title, "the full topic id on hover")
	screenshot(t, ctx, "newer-3-lines")

	// Room presence: online joins the panel, the documented offline leaves it.
	postSample(t, p.Addr, sample(t, "group_member_state", map[string]any{"EventType": "Online", "EventCause": ""}))
	waitText(t, ctx, "#rooms .room", "@TGS#2J4SZEAEL")
	waitText(t, ctx, "#rooms .room + .dim", "2 online")
	require.Equal(t, "jared,tommy", evalString(t, ctx, `[...document.querySelectorAll('#rooms [data-user]')].map(b => b.textContent).join()`))
	require.True(t, evalBool(t, ctx, `getComputedStyle(document.querySelector('.rooms')).display !== 'none'`))
	waitText(t, ctx, "#feed li.group-member-status.online .says", "jared, tommy came online in room @TGS#2J4SZEAEL")
	screenshot(t, ctx, "newer-4-rooms")
	postSample(t, p.Addr, sample(t, "group_member_state", nil))
	waitText(t, ctx, "#feed li.group-member-status.offline .says", "jared, tommy went offline in room @TGS#2J4SZEAEL · HeartbeatInterrupt")
	waitText(t, ctx, "#rooms", "")
	require.True(t, evalBool(t, ctx, `getComputedStyle(document.querySelector('.rooms')).display === 'none'`))
	screenshot(t, ctx, "newer-5-rooms-left")
}
