package membership_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/broker"
	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
)

// A callback the IM sends again (the same event, the broker's duplicate)
// changes no one's membership: a disbanded audio-video group stays closed
// when its creation comes again, and a user who left stays out when the
// join comes again. The events go through a callback.Learning in front of
// a real broker, as the hub publishes them.
func TestRepeatChangesNoMembership(t *testing.T) {
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		m := newIM(t, imapi.Config{})
		c := newChecker(t, m, membership.Config{Redis: rdb})
		b := broker.NewMemory(broker.Config{DedupeWindow: time.Hour})
		l := &callback.Learning{Next: b, Membership: c}
		publish := func(id, data string) {
			t.Helper()
			if _, err := l.Publish(ctx, broker.Message{App: app, ID: id, Channels: []string{"app"}, Data: []byte(data)}); err != nil {
				t.Fatal(err)
			}
		}

		created := `{"type":"group.created","group_id":"@TGS#live","group_type":"AVChatRoom","owner":"host"}`
		publish("create-1", created)
		if v, _ := check(t, c, "@TGS#live", "x"); v != membership.Member {
			t.Fatalf("in the audio-video group just made: %v, want member", v)
		}
		publish("destroy-1", `{"type":"group.destroyed","group_id":"@TGS#live"}`)
		publish("create-1", created)
		for _, u := range []string{"x", "y", "host"} {
			if v, _ := check(t, c, "@TGS#live", u); v != membership.NotMember {
				t.Fatalf("%s after the creation came again, past the disbanding: %v, want not member", u, v)
			}
		}

		joined := `{"type":"group.member.joined","group_id":"G","members":["x"]}`
		publish("join-1", joined)
		publish("exit-1", `{"type":"group.member.left","group_id":"G","members":["x"]}`)
		publish("join-1", joined)
		if v, _ := check(t, c, "G", "x"); v != membership.NotMember {
			t.Fatalf("after the join came again, past the exit: %v, want not member", v)
		}
	})
}
