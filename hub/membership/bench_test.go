package membership_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/redistest"
)

// BenchmarkCheckKept is a Check answered by a kept answer, the path of
// every subscribe after the first: in memory, and one HMGET on Redis (a
// unix socket).
func BenchmarkCheckKept(b *testing.B) {
	for _, store := range []string{"memory", "redis"} {
		b.Run(store, func(b *testing.B) {
			var rdb redis.UniversalClient
			if store == "redis" {
				rdb = redistest.Start(b).Client()
			}
			m := newIM(b, imapi.Config{})
			c := newChecker(b, m, membership.Config{Redis: rdb})
			ctx := context.Background()
			if err := c.Joined(ctx, app, "@TGS#2J4SZEAEL", "leckie"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if v, err := c.Check(ctx, app, "@TGS#2J4SZEAEL", "leckie"); v != membership.Member {
						b.Fatalf("%v, %v", v, err)
					}
				}
			})
		})
	}
}
