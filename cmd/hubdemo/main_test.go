package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/internal/hubtest"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

// Every callback the generator makes of a command the hub publishes is one
// the hub accepts; the others it answers OK without publishing.
func TestGeneratorMakesValidCallbacks(t *testing.T) {
	g := newGenerator(rand.New(rand.NewPCG(1, 2)), "jared")
	seen := map[string]int{}
	for i := range 2000 {
		c := g.next(time.Unix(1700000000, 0))
		g.verdict(i%3 != 0)
		ev, _, err := callback.Parse(callback.Request{App: "1", Command: c.cmd, Received: time.Now()}, []byte(c.body))
		if errors.Is(err, callback.ErrUnknownCommand) {
			// The Before callbacks ask the app's backend for a verdict;
			// they are not published.
			require.Contains(t, c.cmd, ".CallbackBefore", "the demo sends a command the hub does not publish")
			continue
		}
		require.NoError(t, err, "%s %s", c.cmd, c.body)
		seen[ev.Type]++
	}
	for _, typ := range []string{callback.TypeGroupSent, callback.TypeGroupRecalled, callback.TypeC2CSent, callback.TypeC2CRecalled,
		callback.TypeUserStatus, callback.TypeGroupMemberJoined, callback.TypeGroupMemberLeft, callback.TypeC2CRead,
		callback.TypeGroupRead, callback.TypeGroupDestroyed, callback.TypeGroupInfoChanged,
		callback.TypeGroupModified, callback.TypeC2CModified, callback.TypeGroupExtension, callback.TypeC2CExtension,
		callback.TypeGroupCreated, callback.TypeGroupMemberChange, callback.TypeGroupOwnerChanged,
		callback.TypeTopicCreated, callback.TypeTopicChanged, callback.TypeTopicDestroyed,
		callback.TypeGroupAttrsChanged, callback.TypeGroupMemberStatus} {
		assert.Positive(t, seen[typ], "the demo sends %s", typ)
	}
}

func TestDemoAgainstAHub(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-apps", "1400000000:tok"})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, run(ctx, demoConfig{Base: "http://" + p.Addr, App: "1400000000", Token: "tok", Rate: 400, Count: 1500, PageUser: "jared"}, &out))
	assert.Contains(t, out.String(), "1500 callbacks posted, 0 refused")
	// A hub with no backend to ask answers a Before callback OK: allowed.
	assert.Regexp(t, `(?m)^hubdemo: Group\.CallbackBeforeSendMsg \S+ in \S+: .*: allowed$`, out.String())
	assert.NotContains(t, out.String(), "denied")
	_, metrics := p.Get("/metrics")
	assert.True(t, strings.Contains(metrics, `result="published"`))
	// Each of the newer commands was sent, accepted and published.
	for _, cmd := range []string{callback.CommandGroupModify, callback.CommandC2CModify, callback.CommandGroupExtension,
		callback.CommandC2CExtension, callback.CommandGroupCreate, callback.CommandGroupMemberChanged, callback.CommandGroupOwnerChanged,
		callback.CommandTopicCreate, callback.CommandTopicInfoChanged, callback.CommandTopicDestroyed,
		callback.CommandGroupAttrChanged, callback.CommandMemberStateChange} {
		assert.Regexp(t, `imhub_callbacks_total\{command="`+regexp.QuoteMeta(cmd)+`",result="published"\} [1-9]`, metrics, cmd)
		assert.NotRegexp(t, `imhub_callbacks_total\{command="`+regexp.QuoteMeta(cmd)+`",result="(bad_request|ignored)"\}`, metrics, cmd)
	}
}
