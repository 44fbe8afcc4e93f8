package main

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

// A node whose control channel is not subscribed would never hear a
// disconnect or a revoke: /readyz says so (503), so that a load balancer
// sends it no clients, and says ok once it is subscribed. Here Redis's
// ACL denies the control channel to the hub's user, and then grants it.
func TestBinaryReadyzNeedsControlChannel(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	ctx := context.Background()
	require.NoError(t, rc.Do(ctx, "ACL", "SETUSER", "hub", "on", ">hub-password", "~*", "&imhub:{*", "+@all").Err())
	u := url.URL{Scheme: "unix", User: url.UserPassword("hub", "hub-password"), Path: srv.Socket()}
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret, "-redis", u.String(), "-api-keys", "100:" + apiKey})
	// Until the broker is up /readyz says so first; then it must name the
	// control channel, and stay 503.
	var code int
	var body string
	require.Eventually(t, func() bool {
		code, body = p.Get("/readyz")
		return body == "control channel unavailable\n"
	}, 15*time.Second, 20*time.Millisecond, "readyz never named the control channel: %d %q", code, body)
	assert.Equal(t, 503, code)

	require.NoError(t, rc.Do(ctx, "ACL", "SETUSER", "hub", "&imhub:control").Err())
	require.NoError(t, rc.Do(ctx, "CLIENT", "KILL", "USER", "hub").Err())
	p.WaitReady(200)
}
