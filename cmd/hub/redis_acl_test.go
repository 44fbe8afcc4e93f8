package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/apiclient"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

// readmeACL is the ACL user deploy/README.md gives operators, with
// password for its PASSWORD: the very line they paste, so that the
// document and what is tested cannot drift apart.
func readmeACL(t *testing.T, password string) string {
	t.Helper()
	var found []string
	for line := range strings.SplitSeq(deployReadme(t), "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "user imhub ") {
			found = append(found, line)
		}
	}
	require.Len(t, found, 1, "deploy/README.md gives one ACL user line")
	require.Contains(t, found[0], ">PASSWORD", "the line names the password it wants replaced")
	return strings.Replace(found[0], ">PASSWORD", ">"+password, 1)
}

// deployReadme is the text of deploy/README.md.
func deployReadme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/README.md")
	require.NoError(t, err)
	return string(b)
}

// A hub whose Redis user has exactly deploy/README.md's least-privilege
// ACL does everything it does with a default user, with its default flags
// (-redis-wait-replicas auto among them): see testLeastPrivilegeACL.
func TestBinaryRedisLeastPrivilegeACL(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{Persist: true, Conf: []string{readmeACL(t, aclPassword)}})
	u := url.URL{Scheme: "unix", User: url.UserPassword("imhub", aclPassword), Path: srv.Socket()}
	testLeastPrivilegeACL(t, redisUnderTest{url: u.String(), stop: srv.Stop, restart: srv.Restart}, srv)
}

// The same on a Redis Cluster of three primaries, whose client also asks
// the nodes for the cluster's shape; the shard of group:G is the one that
// goes away.
func TestBinaryRedisClusterLeastPrivilegeACL(t *testing.T) {
	cl := redistest.StartCluster(t, 3, readmeACL(t, aclPassword))
	down := cl.Owner(streamKey("100", "group:G"))
	testLeastPrivilegeACL(t, redisUnderTest{
		url:     cl.UserURL("imhub:" + aclPassword),
		stop:    func() { down.Stop(); cl.WaitState("fail") },
		restart: func() { down.Restart(); cl.WaitOK() },
	}, cl.Nodes...)
}

const aclPassword = "acl-test-password"

// testLeastPrivilegeACL: callbacks publish and reach clients, once each;
// since recovers from history; presence names who is subscribed; a
// member the IM let into a group is removed when it leaves; a revocation
// closes sessions and is read back by a hub that starts later;
// a callback spooled while Redis is away is published when it is back;
// forwards reach the app's backend. And Redis refuses nothing: the ACL
// log of every server, which records each denied command, key and
// channel, stays empty.
func testLeastPrivilegeACL(t *testing.T, rd redisUnderTest, servers ...*redistest.Server) {
	ctx := context.Background()
	for _, s := range servers {
		// Redis 7.2 and later know the CLIENT SETINFO that go-redis
		// sends at connect, and deploy/README.md says to allow it there.
		if known, _ := s.Client().Do(ctx, "COMMAND", "INFO", "client|setinfo").Slice(); len(known) > 0 && known[0] != nil {
			require.Contains(t, deployReadme(t), "`+client|setinfo`")
			require.NoError(t, s.Client().Do(ctx, "ACL", "SETUSER", "imhub", "+client|setinfo").Err())
		}
		require.NoError(t, s.Client().Do(ctx, "ACL", "LOG", "RESET").Err())
	}
	// A server's ACL log is kept in memory: it is read before Redis goes
	// away for the spool, and again at the end.
	nothingDenied := func() {
		t.Helper()
		for _, s := range servers {
			denied, err := s.Client().Do(ctx, "ACL", "LOG").Slice()
			if err != nil {
				continue // stopped by a failed step; its assertion says why
			}
			assert.Empty(t, aclDenials(denied), "Redis at %s denied the hub's user", s.Socket())
		}
	}
	t.Cleanup(nothingDenied)
	backend := newSeqBackend(t, 0)
	im, imURL := startIM(t)
	// The IM is asked who may see a group: watcher and late are members
	// of G, jared of M until he leaves it.
	im.CreateGroup(imApp, "G", "Public", "watcher", "late")
	im.CreateGroup(imApp, "M", "Public", "leckie", "jared")
	start := func() *hubtest.Process {
		p := hubtest.Start(t, []string{"-redis", rd.url, "-apps", "100," + forwardApp, "-jwt-secret", clusterSecret,
			"-api-keys", "100:" + apiKey, "-forward", forwardApp + "=" + backend.URL, "-spool-dir", t.TempDir(),
			"-im-keys", imApp + ":" + imKey, "-im-api-url", imURL})
		p.WaitReady(200)
		return p
	}
	p := start()
	api := apiclient.New(p.URL(""), "100", apiKey)

	col := collect(t, wsURL(p))
	for seq := 1; seq <= 3; seq++ {
		require.Equal(t, http.StatusOK, postCommand(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("G", seq)))
	}
	require.Equal(t, http.StatusOK, postCommand(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("G", 3)), "a retry")
	waitSeqs(t, col, []int{1, 2, 3})

	// A client that saw the first event gets the two after it from the
	// channel's history.
	got := col.channel("group:G")
	late := dialUser(t, p, mintAt(t, "late", time.Now().Add(-time.Minute), "G"))
	late.Send(map[string]any{"op": "subscribe", "channel": "group:G", "since": got[0].offset})
	sub := late.ReadOp("subscribed")
	require.NotNil(t, sub.Recovered)
	assert.True(t, *sub.Recovered, "recovered from history")
	assert.Equal(t, got[1].offset, late.ReadOp("event").Offset)
	assert.Equal(t, got[2].offset, late.ReadOp("event").Offset)

	require.Eventually(t, func() bool {
		users, err := api.Presence(ctx, "group:G")
		return err == nil && users["watcher"] == 1 && users["late"] == 1
	}, 10*time.Second, 20*time.Millisecond, "presence of group:G names watcher and late")

	// A member the IM let in is removed when it leaves, and then refused;
	// the group's end is recorded too.
	jared := dialSig(t, p, "jared")
	jared.Send(map[string]any{"op": "subscribe", "channel": "group:M"})
	jared.ReadOp("subscribed")
	require.Equal(t, http.StatusOK, postCommand(t, p, imApp, "Group.CallbackAfterMemberExit", exitBody("M", "jared")))
	require.Equal(t, http.StatusOK, postCommand(t, p, imApp, "C2C.CallbackAfterSendMsg", c2cMsg("leckie", "jared", 1)))
	assert.Equal(t, []string{"event group.member.left", "unsubscribed removed"},
		ofChannel(t, jared, "group:M", "user:jared", "c2c.message.sent#1"))
	jared.Send(map[string]any{"op": "subscribe", "channel": "group:M"})
	assert.Equal(t, "forbidden", jared.Read().Code)
	require.Equal(t, http.StatusOK, postCommand(t, p, imApp, "Group.CallbackAfterGroupDestroyed",
		fmt.Sprintf(`{"GroupId":"M","Type":"Public","Owner_Account":"leckie","Name":"n","EventTime":%d}`, time.Now().UnixMilli())))

	cut := time.Now().Truncate(time.Second)
	n, err := api.Revoke(ctx, "late", cut)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	late.ExpectClose(hub.CloseDisconnected)
	p.Kill()
	p = start()
	assert.Equal(t, 1.0, metric(t, p, "imhub_revocations_remembered"))
	wstest.Dial(t, wsURL(p), mintAt(t, "late", cut.Add(-time.Minute), "G")).ExpectClose(hub.CloseInvalidToken)

	col = collect(t, wsURL(p))
	nothingDenied()
	rd.stop()
	code, body := postBody(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("G", 4))
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, 1.0, metric(t, p, "imhub_spool_events"), "kept on disk while Redis is away")
	rd.restart()
	require.Eventually(t, func() bool { return metric(t, p, "imhub_spool_events") == 0 }, 30*time.Second, 20*time.Millisecond,
		"the spool is drained")
	spooled := func(r received) bool { return r.seq == 4 }
	require.Eventually(t, func() bool { return slices.ContainsFunc(col.channel("group:G"), spooled) },
		30*time.Second, 20*time.Millisecond, "the spooled callback reaches the client")

	for seq := 1; seq <= 3; seq++ {
		code, body := post(t, p, forwardApp, seq)
		require.Equal(t, http.StatusOK, code, body)
	}
	waitDelivered(t, backend, []int{1, 2, 3}, 20*time.Second)
}

// aclDenials names each entry of ACL LOG by what was denied and why, such
// as "command info".
func aclDenials(log []any) []string {
	var out []string
	for _, e := range log {
		fields := map[string]any{}
		switch e := e.(type) {
		case map[any]any: // RESP3
			for k, v := range e {
				fields[fmt.Sprint(k)] = v
			}
		case []any: // RESP2: name, value, …
			for i := 0; i+1 < len(e); i += 2 {
				fields[fmt.Sprint(e[i])] = e[i+1]
			}
		}
		out = append(out, fmt.Sprintf("%v %v (%v, %v times)", fields["reason"], fields["object"], fields["context"], fields["count"]))
	}
	return out
}
