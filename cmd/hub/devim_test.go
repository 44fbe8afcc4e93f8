package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// -dev-im is a demo hub's alone, and takes the place of -im-keys and
// -im-api-url: each other way is refused in one line.
func TestConfigDevIM(t *testing.T) {
	dev := []string{"-dev", "-addr", "127.0.0.1:0", "-spool-dir", "off"}
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"with -dev", append(dev, "-dev-im"), ""},
		{"without -dev", []string{"-apps", "100", "-jwt-secret", testSecret, "-spool-dir", "off", "-dev-im"}, "-dev-im needs -dev"},
		{"with -im-keys", append(dev, "-dev-im", "-im-keys", DemoApp+":a-real-key-of-the-console"), "drop -im-keys"},
		{"with -im-api-url", append(dev, "-dev-im", "-im-api-url", "http://127.0.0.1:9000"), "drop -im-api-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, env(nil), &bytes.Buffer{})
			if tc.err == "" {
				require.NoError(t, err)
				assert.True(t, c.IM.StandIn)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			assert.NotContains(t, err.Error(), "\n")
			assert.NotContains(t, err.Error(), "a-real-key", "no key is echoed")
		})
	}
}

// userSigOf is what /dev/usersig answers.
type userSigOf struct {
	SdkAppID string   `json:"sdkappid"`
	UserID   string   `json:"userid"`
	UserSig  string   `json:"usersig"`
	Expires  int64    `json:"expires"`
	Groups   []string `json:"groups"`
	WS       string   `json:"ws"`
}

func devUserSig(t *testing.T, p *hubtest.Process, user string) userSigOf {
	t.Helper()
	code, body := p.Get("/dev/usersig?userid=" + url.QueryEscape(user))
	require.Equal(t, 200, code, body)
	var u userSigOf
	require.NoError(t, json.Unmarshal([]byte(body), &u))
	return u
}

// dialDevSig connects to p as user with a UserSig of /dev/usersig.
func dialDevSig(t *testing.T, p *hubtest.Process, user string) *wstest.Conn {
	t.Helper()
	c := wstest.Dial(t, devUserSig(t, p, user).WS, "")
	require.Equal(t, user, c.ReadOp("connected").User)
	require.Equal(t, "user:"+user, c.ReadOp("subscribed").Channel)
	return c
}

// A -dev -dev-im hub is an IM app by itself: its stand-in learns the
// groups from the callbacks it takes, /dev/usersig mints UserSigs its
// clients connect with and lists their groups, and a kick removes them
// live. A group no callback made is one the stand-in does not have, so
// nobody is in it.
func TestDevIM(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-dev-im"})
	p.WaitReady(200)
	assert.Contains(t, p.Stdout(), "/dev/usersig?userid=jared")
	assert.Regexp(t, `demo IM key devim[0-9a-f]{40}`, p.Stdout(), "the banner prints the demo key")

	assert.Empty(t, devUserSig(t, p, "jared").Groups)
	require.Equal(t, 200, postCommand(t, p, DemoApp, "Group.CallbackAfterCreateGroup", createBody("@TGS#2J4SZEAEL", "leah", "jared")))
	require.Equal(t, 200, postCommand(t, p, DemoApp, "Group.CallbackAfterNewMemberJoin",
		`{"GroupId":"G2","Type":"Public","JoinType":"Apply","Operator_Account":"jared","NewMemberList":[{"Member_Account":"jared"}]}`))
	u := devUserSig(t, p, "jared")
	assert.Equal(t, []string{"@TGS#2J4SZEAEL", "G2"}, u.Groups)
	assert.Equal(t, DemoApp, u.SdkAppID)

	c := dialDevSig(t, p, "jared")
	for ch, want := range map[string]string{"group:@TGS#2J4SZEAEL": "subscribed", "group:G2": "subscribed", "group:G3": "error", "app": "error"} {
		c.Send(map[string]any{"op": "subscribe", "channel": ch})
		f := c.Read()
		require.Equal(t, want, f.Op, "%s: %s", ch, f.Raw)
	}
	require.Equal(t, 200, postCommand(t, p, DemoApp, "Group.CallbackAfterMemberExit", exitBody("@TGS#2J4SZEAEL", "jared")))
	assert.Equal(t, "removed", drain(t, c, "group:@TGS#2J4SZEAEL", "").reason)
	assert.Equal(t, []string{"G2"}, devUserSig(t, p, "jared").Groups, "the stand-in learnt the exit too")
}

// The stand-in's faults, delay and rate are set through /dev/im, and the
// hub meets them as it would the IM's: a subscribe it cannot get an
// answer for is unavailable, never granted.
func TestDevIMFaults(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-dev-im", "-im-api-timeout", "500ms"})
	p.WaitReady(200)
	set := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(p.URL("/dev/im"), "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Only the stand-in knows the group: the hub must ask it.
	c := dialDevSig(t, p, "jared")
	subscribe := func(group string) wstest.Frame {
		c.Send(map[string]any{"op": "subscribe", "channel": "group:" + group})
		return c.Read()
	}
	for _, tc := range []struct {
		name, body, code string
	}{
		{"error", `{"fault":"error"}`, "unavailable"},
		{"hang", `{"fault":"hang"}`, "unavailable"},
		{"html", `{"fault":"html"}`, "unavailable"},
		{"slow", `{"fault":"none","delay":"1m"}`, "unavailable"},
		{"rate-limited", `{"fault":"none","delay":"0s","rate":0.001,"burst":1}`, ""}, // the first call passes
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := set(tc.body)
			require.Equal(t, 200, code, body)
			group := "F-" + tc.name
			require.Equal(t, 200, postCommand(t, p, DemoApp, "Group.CallbackAfterNewMemberJoin",
				`{"GroupId":"`+group+`","Type":"Public","JoinType":"Apply","Operator_Account":"leah","NewMemberList":[{"Member_Account":"leah"}]}`))
			f := subscribe(group)
			if tc.code == "" {
				assert.Equal(t, "error", f.Op, f.Raw)
				assert.Equal(t, "forbidden", f.Code, "the call was answered: jared is not in it")
				f = subscribe(group + "-again")
				assert.Equal(t, "unavailable", f.Code, "the next is over the stand-in's rate: %s", f.Raw)
				return
			}
			assert.Equal(t, "error", f.Op, f.Raw)
			assert.Equal(t, tc.code, f.Code, f.Raw)
		})
	}
	_, body := p.Get("/dev/im")
	var b struct {
		Fault, Delay, URL string
		Rate              float64
		Burst             int
	}
	require.NoError(t, json.Unmarshal([]byte(body), &b))
	assert.Equal(t, "none", b.Fault)
	assert.Equal(t, "0s", b.Delay)
	assert.Equal(t, 0.001, b.Rate)
	assert.Equal(t, 1, b.Burst)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+$`, b.URL)
	_, metrics := p.Get("/metrics")
	assert.Contains(t, metrics, `imhub_im_api_calls_total{api="get_role_in_group",app="1400000000",result="rate_limited"} 1`)
}

// Every request /dev/usersig and /dev/im refuse, and what they answer.
func TestDevIMRefusals(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-dev-im"})
	plain := hubtest.Start(t, []string{"-dev"})
	do := func(p *hubtest.Process, method, path, host, origin, ctype, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, p.URL(path), strings.NewReader(body))
		require.NoError(t, err)
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const js = "application/json"
	for _, tc := range []struct {
		name                                    string
		p                                       *hubtest.Process
		method, path, host, origin, ctype, body string
		code                                    int
		says                                    string
	}{
		{"a UserSig", p, "GET", "/dev/usersig?userid=jared", "", "", "", "", 200, `"userid":"jared"`},
		{"no user", p, "GET", "/dev/usersig", "", "", "", "", 400, "userid: want"},
		{"a user too long", p, "GET", "/dev/usersig?userid=" + strings.Repeat("u", 33), "", "", "", "", 400, "userid: want"},
		{"a ttl too long", p, "GET", "/dev/usersig?userid=jared&ttl=25h", "", "", "", "", 400, "ttl: want"},
		{"a ttl that is not one", p, "GET", "/dev/usersig?userid=jared&ttl=soon", "", "", "", "", 400, "ttl: want"},
		{"a UserSig for a rebound name", p, "GET", "/dev/usersig?userid=jared", "evil.example", "", "", "", 403, "misdirected"},
		{"no stand-in, no UserSig", plain, "GET", "/dev/usersig?userid=jared", "", "", "", "", 404, ""},
		{"no stand-in, no faults", plain, "POST", "/dev/im", "", "", js, `{"fault":"error"}`, 404, ""},
		{"a fault", p, "POST", "/dev/im", "", "http://127.0.0.1:3000", js, `{"fault":"garbage"}`, 200, `"fault":"garbage"`},
		{"a fault for a rebound name", p, "POST", "/dev/im", "evil.example", "", js, `{"fault":"error"}`, 403, "misdirected"},
		{"a fault from another site", p, "POST", "/dev/im", "", "http://evil.example", js, `{"fault":"error"}`, 403, "loopback origin"},
		{"a fault as a form", p, "POST", "/dev/im", "", "", "text/plain", `{"fault":"error"}`, 415, "application/json"},
		{"no fault of that name", p, "POST", "/dev/im", "", "", js, `{"fault":"slow"}`, 400, "want one of none"},
		{"a field unknown", p, "POST", "/dev/im", "", "", js, `{"fault":"error","Fault":"none"}`, 400, "fields fault, delay, rate and burst only"},
		{"not an object", p, "POST", "/dev/im", "", "", js, `["error"]`, 400, "a JSON object"},
		{"a delay too long", p, "POST", "/dev/im", "", "", js, `{"delay":"2m"}`, 400, "delay: want"},
		{"a delay below zero", p, "POST", "/dev/im", "", "", js, `{"delay":"-1s"}`, 400, "delay: want"},
		{"a rate below zero", p, "POST", "/dev/im", "", "", js, `{"rate":-1}`, 400, "rate: want"},
		{"a burst without a rate", p, "POST", "/dev/im", "", "", js, `{"burst":3}`, 400, "burst: want"},
		{"another method", p, "PUT", "/dev/im", "", "", js, `{}`, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(tc.p, tc.method, tc.path, tc.host, tc.origin, tc.ctype, tc.body)
			assert.Equal(t, tc.code, code, body)
			assert.Contains(t, body, tc.says)
		})
	}
	_, body := p.Get("/dev/im")
	assert.Contains(t, body, `"fault":"garbage"`, "a refused change changed nothing")
}

// Hubs of one Redis with -dev-im share the stand-in's groups: what one
// learnt from a callback, the others answer and list, and a UserSig one
// minted is good on the others (they share -jwt-secret, and so the demo
// key).
func TestDevIMAcrossNodes(t *testing.T) {
	r := redistest.Start(t)
	var nodes []*hubtest.Process
	for _, n := range []string{"hub-a", "hub-b"} {
		nodes = append(nodes, hubtest.Start(t, []string{"-dev", "-dev-im", "-redis", r.URL(), "-jwt-secret", clusterSecret, "-node", n}))
	}
	for _, p := range nodes {
		p.WaitReady(200)
	}
	a, b := nodes[0], nodes[1]
	require.Equal(t, 200, postCommand(t, a, DemoApp, "Group.CallbackAfterCreateGroup", createBody("G1", "leah", "jared")))
	assert.Equal(t, []string{"G1"}, devUserSig(t, b, "jared").Groups)

	onB := wstest.Dial(t, strings.Replace(devUserSig(t, a, "jared").WS, a.Addr, b.Addr, 1), "")
	require.Equal(t, "jared", onB.ReadOp("connected").User)
	onB.ReadOp("subscribed")
	onB.Send(map[string]any{"op": "subscribe", "channel": "group:G1"})
	require.Equal(t, "subscribed", onB.Read().Op)
	require.Equal(t, 200, postCommand(t, a, DemoApp, "Group.CallbackAfterMemberExit", exitBody("G1", "jared")))
	assert.Equal(t, "removed", drain(t, onB, "group:G1", "").reason)
	assert.Empty(t, devUserSig(t, b, "jared").Groups)
}

// The stand-in learns a group's type from the callback that made it: an
// audio-video group admits anyone, a Public one only those the creation
// named, and a change of role or of owner changes no one's access.
func TestDevIMLearnsGroupType(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-dev-im"})
	p.WaitReady(200)
	require.Equal(t, 200, postCommand(t, p, DemoApp, "Group.CallbackAfterCreateGroup", createBody("G1", "leah", "jared")))
	require.Equal(t, 200, postCommand(t, p, DemoApp, "Group.CallbackAfterCreateGroup",
		`{"GroupId":"@TGS#aLive","Type":"AVChatRoom","Operator_Account":"admin","Owner_Account":"leah","Name":"live"}`))
	require.Equal(t, 200, postCommand(t, p, DemoApp, "Group.CallbackAfterMemberFieldChanged",
		`{"GroupId":"G1","Type":"Public","Operator_Account":"leah","Member_Account":"jared","Role":"Admin","EventTime":1}`))
	require.Equal(t, 200, postCommand(t, p, DemoApp, "Group.CallbackAfterChangeGroupOwner",
		`{"GroupId":"G1","Type":"Public","Operator_Account":"leah","OldOwner_Account":"leah","NewOwner_Account":"jared","EventTime":2}`))
	for _, tc := range []struct{ user, channel, want string }{
		{"jared", "group:G1", "subscribed"},
		{"leah", "group:G1", "subscribed"},
		{"mallory", "group:G1", "error"},
		{"mallory", "group:@TGS#aLive", "subscribed"},
		{"jared", "group:@TGS#aLive", "subscribed"},
	} {
		c := dialDevSig(t, p, tc.user)
		c.Send(map[string]any{"op": "subscribe", "channel": tc.channel})
		f := c.Read()
		assert.Equal(t, tc.want, f.Op, "%s to %s: %s", tc.user, tc.channel, f.Raw)
	}
}
