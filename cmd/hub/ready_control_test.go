package main

import (
	"context"
	"net/url"
	"testing"

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
	p.WaitReady(503)
	code, body := p.Get("/readyz")
	assert.Equal(t, 503, code)
	assert.Equal(t, "control channel unavailable\n", body)

	require.NoError(t, rc.Do(ctx, "ACL", "SETUSER", "hub", "&imhub:control").Err())
	require.NoError(t, rc.Do(ctx, "CLIENT", "KILL", "USER", "hub").Err())
	p.WaitReady(200)
}
