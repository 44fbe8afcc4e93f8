package membership_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/redistest"
)

// On a Redis Cluster every command and script of a group is one slot:
// the batch path (queued users of two nodes, one call per 500), the
// callbacks and a late answer after a disbanding all work as on one
// server.
func TestRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	client := func() redis.UniversalClient {
		c, err := broker.NewRedisClient(cl.URL(), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, ok := c.(*redis.ClusterClient); !ok {
			t.Fatalf("a %T, not a cluster client", c)
		}
		return c
	}
	a, b := client(), client()
	t.Run("batch", func(t *testing.T) { stormWhileAnotherNodeAsks(t, a, b) })
	t.Run("callbacks", func(t *testing.T) {
		ctx := context.Background()
		m := newIM(t, imapi.Config{})
		m.stub.CreateGroup(app, "g", "Public", "owner", "peter")
		na := newChecker(t, m, membership.Config{Redis: a})
		nb := newChecker(t, m, membership.Config{Redis: b})
		must(t, na.Joined(ctx, app, "new", "u1", "u2"))
		if v, _ := check(t, nb, "new", "u2"); v != membership.Member {
			t.Fatalf("joined on the other node: %v", v)
		}
		release, verdict := inFlight(t, m, na, "g", "peter")
		must(t, nb.Left(ctx, app, "g", "peter"))
		release()
		if v := <-verdict; v != membership.NotMember {
			t.Fatalf("left on the other node while asked: %v", v)
		}
		release, verdict = inFlight(t, m, na, "g", "owner")
		must(t, nb.Destroyed(ctx, app, "g"))
		release()
		if v := <-verdict; v != membership.NotMember {
			t.Fatalf("disbanded on the other node while asked: %v", v)
		}
	})
}
