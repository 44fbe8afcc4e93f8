package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// The built hub takes its per-connection rate limit from HUB_CLIENT_RATE
// and -client-burst: a client flooding it with pings gets the burst
// answered, then rate_limited errors, then is closed with 1008.
func TestBinaryClientRateLimit(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev", "-jwt-secret", clusterSecret, "-client-burst", "30", "-max-subs", "10"}, "HUB_CLIENT_RATE=1")
	c := wstest.Dial(t, "ws://"+p.Addr+"/ws", mint(t, "1400000000", "flood", false))
	c.ReadOp("connected")
	c.ReadOp("subscribed")
	go func() {
		// Writes fail once the hub has closed: the flood ends there.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := 0; ctx.Err() == nil; i++ {
			if c.C.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"op":"ping","id":%d}`, i)) != nil {
				return
			}
		}
	}()
	frames := c.ExpectClose(websocket.StatusPolicyViolation)
	var pongs, limited int
	for _, f := range frames {
		switch {
		case f.Op == "pong":
			pongs++
		case f.Op == "error" && f.Code == "rate_limited":
			limited++
		default:
			t.Fatalf("unexpected frame %s", f.Raw)
		}
	}
	require.GreaterOrEqual(t, pongs, 30, "the burst is answered")
	assert.Less(t, pongs, 60, "at one a second, not the flood")
	assert.GreaterOrEqual(t, limited, 10)
}
