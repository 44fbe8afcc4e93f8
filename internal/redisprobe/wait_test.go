package redisprobe_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/redisprobe"
	"github.com/imhub/imhub/internal/redistest"
)

// On a primary with a synced replica both waits return, and the primary
// counts the WAITs they sent.
func TestWaitsOnAReplica(t *testing.T) {
	primary, replica := redistest.StartReplicated(t, redistest.Options{})
	ctx := context.Background()
	require.NoError(t, redisprobe.WaitSynced(ctx, replica.Client()))
	require.NoError(t, redisprobe.WaitConfirms(ctx, primary.Client(), "redisprobe:test"))
	st, err := redisprobe.CommandStat(ctx, primary.Client(), "wait")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, st["calls"], 2, "StartReplicated's WAIT and this one")
	n, err := primary.Client().Exists(ctx, "redisprobe:test").Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the key written is deleted")
}

// Without a replica neither wait is satisfied: each gives up when its
// context ends, and says what it saw last.
func TestWaitsWithoutAReplica(t *testing.T) {
	alone := redistest.Start(t)
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	err := redisprobe.WaitConfirms(short(), alone.Client(), "redisprobe:test")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "no replica confirmed a write")
	assert.ErrorContains(t, err, "WAIT 1 counted no replica")

	err = redisprobe.WaitSynced(short(), alone.Client())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "replica not synced")
	assert.ErrorContains(t, err, "role:master", "what INFO replication said")
}
