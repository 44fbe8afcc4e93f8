package main

import (
	"bytes"
	"context"
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

// Every callback the generator makes is one the hub accepts and publishes.
func TestGeneratorMakesValidCallbacks(t *testing.T) {
	g := newGenerator(rand.New(rand.NewPCG(1, 2)))
	seen := map[string]int{}
	for range 2000 {
		cmd, body := g.next(time.Unix(1700000000, 0))
		ev, _, err := callback.Parse(callback.Request{App: "1", Command: cmd, Received: time.Now()}, []byte(body))
		require.NoError(t, err, "%s %s", cmd, body)
		seen[ev.Type]++
	}
	for _, typ := range []string{callback.TypeGroupSent, callback.TypeGroupRecalled, callback.TypeC2CSent, callback.TypeC2CRecalled} {
		assert.Positive(t, seen[typ], "the demo sends %s", typ)
	}
}

func TestDemoAgainstAHub(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-apps", "1400000000:tok"})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, run(ctx, "http://"+p.Addr, "1400000000", "tok", 200, 40, &out))
	assert.Contains(t, out.String(), "40 callbacks posted, 0 refused")
	_, metrics := p.Get("/metrics")
	assert.True(t, strings.Contains(metrics, `result="published"`))
}
