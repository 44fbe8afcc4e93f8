package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
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
			// The Before callbacks ask the app's backend for a verdict,
			// and a group's creation tells the hub its first members;
			// they are not published.
			if c.cmd != callback.CommandGroupCreate {
				require.Contains(t, c.cmd, ".CallbackBefore", "the demo sends a command the hub does not publish")
			}
			continue
		}
		require.NoError(t, err, "%s %s", c.cmd, c.body)
		seen[ev.Type]++
	}
	for _, typ := range []string{callback.TypeGroupSent, callback.TypeGroupRecalled, callback.TypeC2CSent, callback.TypeC2CRecalled,
		callback.TypeUserStatus, callback.TypeGroupMemberJoined, callback.TypeGroupMemberLeft, callback.TypeC2CRead,
		callback.TypeGroupRead, callback.TypeGroupDestroyed, callback.TypeGroupInfoChanged} {
		assert.Positive(t, seen[typ], "the demo sends %s", typ)
	}
}

func TestDemoAgainstAHub(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-apps", "1400000000:tok"})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, run(ctx, demoConfig{Base: "http://" + p.Addr, App: "1400000000", Token: "tok", Rate: 200, Count: 80, PageUser: "jared"}, &out))
	assert.Contains(t, out.String(), "80 callbacks posted, 0 refused")
	// A hub with no backend to ask answers a Before callback OK: allowed.
	assert.Regexp(t, `(?m)^hubdemo: Group\.CallbackBeforeSendMsg \S+ in \S+: .*: allowed$`, out.String())
	assert.NotContains(t, out.String(), "denied")
	_, metrics := p.Get("/metrics")
	assert.True(t, strings.Contains(metrics, `result="published"`))
}
