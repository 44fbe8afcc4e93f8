package main

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/imstub"
	"github.com/imhub/imhub/internal/wstest"
)

// The IM app of the tests below, and its secret key.
const (
	imApp = "100"
	imKey = "the-im-secret-key-of-app-100"
)

// startIM runs a stand-in for the IM's REST API that knows imApp's key.
func startIM(t testing.TB) (*imstub.Server, string) {
	t.Helper()
	stub := imstub.New(map[string][]byte{imApp: []byte(imKey)}, "administrator")
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	return stub, srv.URL
}

// imArgs are the flags of a hub whose app imApp follows the IM at imURL.
func imArgs(imURL string) []string {
	return []string{"-apps", "100,200", "-jwt-secret", clusterSecret, "-im-keys", imApp + ":" + imKey, "-im-api-url", imURL}
}

// userSig is imApp's UserSig of user, for an hour.
func userSig(t testing.TB, user string) string {
	t.Helper()
	s, err := auth.SignUserSig([]byte(imKey), imApp, user, time.Now(), time.Hour)
	require.NoError(t, err)
	return s
}

// dialSig connects to p as user with the UserSig in the query, as a
// browser does, and reads the greeting.
func dialSig(t *testing.T, p *hubtest.Process, user string) *wstest.Conn {
	t.Helper()
	q := url.Values{"sdkappid": {imApp}, "userid": {user}, "usersig": {userSig(t, user)}}
	c := wstest.Dial(t, wsURL(p)+"?"+q.Encode(), "")
	require.Equal(t, user, c.ReadOp("connected").User)
	require.Equal(t, "user:"+user, c.ReadOp("subscribed").Channel)
	return c
}

// A hub with -im-keys lets a user in with the UserSig of the IM login,
// and into a group while the IM says the user is a member of it.
func TestIMAccess(t *testing.T) {
	stub, imURL := startIM(t)
	stub.CreateGroup(imApp, "G1", "Public", "leckie", "jared")
	stub.CreateGroup(imApp, "G2", "Public", "leckie")
	p := hubtest.Start(t, imArgs(imURL))
	p.WaitReady(200)

	c := dialSig(t, p, "jared")
	for ch, want := range map[string]string{"group:G1": "subscribed", "group:G2": "error", "app": "error", "user:leckie": "error"} {
		c.Send(map[string]any{"op": "subscribe", "channel": ch})
		f := c.Read()
		assert.Equal(t, want, f.Op, "%s: %s", ch, f.Raw)
	}
	calls, _ := stub.Calls(imApp, "G1")
	assert.Equal(t, 1, calls)

	_, metrics := p.Get("/metrics")
	for _, m := range []string{`imhub_membership_checks_total{result="asked"} 1`, `imhub_membership_checks_total{result="refused"} 1`,
		fmt.Sprintf(`imhub_im_api_calls_total{api="get_role_in_group",app="%s",result="ok"} 2`, imApp),
		`imhub_ws_connections 1`} {
		assert.True(t, strings.Contains(metrics, m), "metrics have %s", m)
	}
}

// exitBody and the others are callbacks' bodies as the IM sends them.
func exitBody(group string, users ...string) string {
	var list []string
	for _, u := range users {
		list = append(list, fmt.Sprintf(`{"Member_Account":%q}`, u))
	}
	return fmt.Sprintf(`{"GroupId":%q,"Type":"Public","ExitType":"Kicked","Operator_Account":"leckie","ExitMemberList":[%s],"EventTime":%d}`,
		group, strings.Join(list, ","), time.Now().UnixMilli())
}

func createBody(group, owner string, members ...string) string {
	var list []string
	for _, u := range members {
		list = append(list, fmt.Sprintf(`{"Member_Account":%q}`, u))
	}
	return fmt.Sprintf(`{"GroupId":%q,"Operator_Account":%q,"Owner_Account":%q,"Type":"Public","Name":"n","MemberList":[%s]}`,
		group, owner, owner, strings.Join(list, ","))
}

// The callbacks keep what the hub knows of the IM's groups current: a
// group created makes its members members without asking the IM, and an
// exit refuses the user at once, though the IM was not asked again.
func TestIMAccessCallbacks(t *testing.T) {
	stub, imURL := startIM(t)
	p := hubtest.Start(t, imArgs(imURL))
	p.WaitReady(200)
	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterCreateGroup", createBody("G7", "leckie", "jared")))
	stub.CreateGroup(imApp, "G7", "Public", "leckie", "jared") // the IM has it too, and is not asked

	c := dialSig(t, p, "jared")
	c.Send(map[string]any{"op": "subscribe", "channel": "group:G7"})
	assert.Equal(t, "subscribed", c.Read().Op)
	require.Equal(t, 200, postCommand(t, p, imApp, "Group.CallbackAfterMemberExit", exitBody("G7", "jared")))
	again := dialSig(t, p, "jared")
	again.Send(map[string]any{"op": "subscribe", "channel": "group:G7"})
	f := again.Read()
	assert.Equal(t, "error", f.Op, f.Raw)
	assert.Equal(t, "forbidden", f.Code)
	calls, _ := stub.Calls(imApp, "G7")
	assert.Zero(t, calls, "the IM was asked nothing: the callbacks said it all")
}

// A hub whose clients all log in with their IM UserSig needs no token
// service: with -im-keys and no JWT key it starts, lets UserSigs in and
// refuses every token.
func TestIMAccessWithoutJWTKey(t *testing.T) {
	_, imURL := startIM(t)
	p := hubtest.Start(t, []string{"-apps", imApp, "-im-keys", imApp + ":" + imKey, "-im-api-url", imURL})
	p.WaitReady(200)
	dialSig(t, p, "jared")
	c := wstest.Dial(t, wsURL(p), mint(t, imApp, "jared", true))
	c.ExpectClose(4001)
}
