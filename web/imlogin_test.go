package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/browsertest"
	"github.com/imhub/imhub/internal/hubtest"
)

func memberList(users ...string) string {
	b, _ := json.Marshal(func() []map[string]string {
		var l []map[string]string
		for _, u := range users {
			l = append(l, map[string]string{"Member_Account": u})
		}
		return l
	}())
	return string(b)
}

// imGroup is one row of the IM login panel.
type imGroup struct {
	Group, State, Says string
}

func imGroups(t *testing.T, ctx context.Context) []imGroup {
	t.Helper()
	var rows []imGroup
	s := evalString(t, ctx, `JSON.stringify([...document.querySelectorAll('#im-groups li')].map(li => ({group: li.dataset.group, state: li.dataset.state, says: li.textContent})))`)
	require.NoError(t, json.Unmarshal([]byte(s), &rows))
	return rows
}

func waitIMGroups(t *testing.T, ctx context.Context, what string, ok func(map[string]imGroup) bool) map[string]imGroup {
	t.Helper()
	var by map[string]imGroup
	require.Eventually(t, func() bool {
		by = map[string]imGroup{}
		for _, r := range imGroups(t, ctx) {
			by[r.Group] = r
		}
		return ok(by)
	}, 20*time.Second, 50*time.Millisecond, "%s: the panel shows %v", what, by)
	return by
}

// The real dashboard of `make run`'s hub (-dev -dev-im) signs in to the
// IM as jared with a demo UserSig, lists the groups the callbacks made
// jared a member of, and, live, shows jared removed from one (with the
// hub's reason), a group disbanded, and a group joined.
func TestDashboardIMLogin(t *testing.T) {
	addr := freeAddr(t)
	p := hubtest.Start(t, []string{"-dev", "-dev-im", "-addr", addr})
	p.WaitReady(200)
	for _, g := range []string{"@TGS#2J4SZEAEL", "@TGS#1NVTZEAE4"} {
		post(t, addr, "Group.CallbackAfterCreateGroup", fmt.Sprintf(`{"CallbackCommand":"Group.CallbackAfterCreateGroup","GroupId":%q,"Type":"Public","Operator_Account":"leah","Owner_Account":"leah","Name":"n","CreateGroupNum":1,"MemberList":%s}`,
			g, memberList("jared", "omar")))
	}

	ctx := browsertest.Start(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")))
	waitStatus(t, ctx, "live") // the firehose, as before
	waitIMGroups(t, ctx, "both groups, subscribed", func(by map[string]imGroup) bool {
		return by["@TGS#2J4SZEAEL"].State == "member" && by["@TGS#1NVTZEAE4"].State == "member"
	})
	assert.Equal(t, "live", evalString(t, ctx, `document.getElementById('im-status').dataset.state`))
	assert.Contains(t, evalString(t, ctx, `document.getElementById('im-status').textContent`), "signed in as jared with a UserSig")
	browsertest.Screenshot(t, ctx, "im-login-1-member")

	post(t, addr, "Group.CallbackAfterMemberExit", `{"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":"@TGS#2J4SZEAEL","Type":"Public","ExitType":"Kicked","Operator_Account":"admin","ExitMemberList":[{"Member_Account":"jared"}]}`)
	by := waitIMGroups(t, ctx, "jared removed", func(by map[string]imGroup) bool { return by["@TGS#2J4SZEAEL"].State == "removed" })
	assert.Contains(t, by["@TGS#2J4SZEAEL"].Says, `removed from the group · reason "removed"`)
	assert.Equal(t, "line-through", evalString(t, ctx, `getComputedStyle(document.querySelector('#im-groups li[data-state=removed] .group')).textDecorationLine`))
	assert.Equal(t, "member", by["@TGS#1NVTZEAE4"].State, "still in the other")
	// The feed shows the exit too: the firehose's own connection.
	waitFeed(t, ctx, "#feed li.group-member-left", "jared", 1)
	browsertest.Screenshot(t, ctx, "im-login-2-removed")

	post(t, addr, "Group.CallbackAfterGroupDestroyed", `{"CallbackCommand":"Group.CallbackAfterGroupDestroyed","GroupId":"@TGS#1NVTZEAE4","Type":"Public","Owner_Account":"leah","Name":"n","MemberList":[{"Member_Account":"leah"},{"Member_Account":"jared"}]}`)
	post(t, addr, "Group.CallbackAfterNewMemberJoin", `{"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"1213456","Type":"Public","JoinType":"Invited","Operator_Account":"leah","NewMemberList":[{"Member_Account":"jared"}]}`)
	by = waitIMGroups(t, ctx, "disbanded, and joined", func(by map[string]imGroup) bool {
		return by["@TGS#1NVTZEAE4"].State == "removed" && by["1213456"].State == "member"
	})
	assert.Contains(t, by["@TGS#1NVTZEAE4"].Says, `the group was disbanded · reason "destroyed"`)
	browsertest.Screenshot(t, ctx, "im-login-3-disbanded-joined")
}

// A hub without -dev-im mints no UserSig: the dashboard shows no IM login.
func TestDashboardNoIMLogin(t *testing.T) {
	addr := freeAddr(t)
	hubtest.Start(t, []string{"-dev", "-addr", addr}).WaitReady(200)
	ctx := browsertest.Start(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")))
	waitStatus(t, ctx, "live")
	assert.Equal(t, "true", evalString(t, ctx, `String(document.getElementById('im-login').hidden)`))
}
