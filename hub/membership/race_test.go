package membership_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/redistest"
)

// inFlight starts a Check of user that waits at the IM until release, and
// returns once the IM has the call (the ask was claimed before it).
func inFlight(t *testing.T, m *im, c *membership.Checker, group, user string) (release func(), verdict <-chan membership.Verdict) {
	t.Helper()
	arrived, release := m.hold()
	t.Cleanup(release)
	out := make(chan membership.Verdict, 1)
	go func() {
		v, _ := c.Check(context.Background(), app, group, user)
		out <- v
	}()
	select {
	case <-arrived:
	case v := <-out:
		t.Fatalf("the Check answered %v without asking the IM", v)
	}
	return release, out
}

// An exit learnt while the IM is being asked about the user wins: the
// IM's answer, given before the exit reached it, says member, and is
// neither kept nor believed. A join learnt so wins over a late "not a
// member" likewise.
func TestCallbackWinsOverAskInFlight(t *testing.T) {
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		m := newIM(t, imapi.Config{})
		m.stub.CreateGroup(app, "g", "Public", "owner", "peter")
		c := newChecker(t, m, membership.Config{Redis: rdb})

		release, verdict := inFlight(t, m, c, "g", "peter")
		must(t, c.Left(ctx, app, "g", "peter"))
		release()
		if v := <-verdict; v != membership.NotMember {
			t.Fatalf("the Check in flight: %v, want not member", v)
		}
		if role, cb := c.KeptForTest(app, "g", "peter"); role != string(imapi.RoleNotMember) || !cb {
			t.Fatalf("kept %q (from a callback: %v), want the exit", role, cb)
		}

		release, verdict = inFlight(t, m, c, "g", "newcomer")
		must(t, c.Joined(ctx, app, "g", "newcomer"))
		release()
		if v := <-verdict; v != membership.Member {
			t.Fatalf("the Check in flight: %v, want member", v)
		}
		for user, want := range map[string]membership.Verdict{"peter": membership.NotMember, "newcomer": membership.Member} {
			if v, _ := check(t, c, "g", user); v != want {
				t.Fatalf("%s asked again: %v, want %v", user, v, want)
			}
		}
		if n := m.calls("g"); n != 2 {
			t.Fatalf("%d calls, want the 2 in flight", n)
		}
	})
}

// A disbanding learnt while the IM is being asked wins: the late answer
// is not kept, and nobody is a member for NonMemberTTL, asked about or
// not; then the IM is asked again.
func TestDestroyedThenLateAnswer(t *testing.T) {
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		m := newIM(t, imapi.Config{})
		m.stub.CreateGroup(app, "g", "Public", "owner", "peter")
		clk := newClock()
		c := newChecker(t, m, membership.Config{Redis: rdb, Now: clk.Now})
		if v, _ := check(t, c, "g", "owner"); v != membership.Member {
			t.Fatalf("before: %v", v)
		}

		release, verdict := inFlight(t, m, c, "g", "peter")
		must(t, c.Destroyed(ctx, app, "g"))
		release()
		if v := <-verdict; v != membership.NotMember {
			t.Fatalf("the Check in flight: %v, want not member", v)
		}
		for _, u := range []string{"owner", "peter", "anyone"} {
			if v, _ := check(t, c, "g", u); v != membership.NotMember {
				t.Fatalf("%s after the disbanding: %v", u, v)
			}
			if role, _ := c.KeptForTest(app, "g", u); role != "" {
				t.Fatalf("%s: %q is kept for a disbanded group", u, role)
			}
		}
		if n := m.calls("g"); n != 2 {
			t.Fatalf("%d calls, want 2 (the first and the one in flight)", n)
		}
		// The stand-in still has the group: once the disbanding is
		// forgotten, the IM is asked again.
		clk.Add(membership.DefaultNonMemberTTL + time.Second)
		if v, _ := check(t, c, "g", "owner"); v != membership.Member {
			t.Fatalf("after NonMemberTTL: %v", v)
		}
		if n := m.calls("g"); n != 3 {
			t.Fatalf("%d calls, want 3", n)
		}
	})
}

// Two nodes learning of the same exit at once, over and over, and while
// one of them is asking about the user: each ends with the user out, and
// neither asks the IM for what the exit said.
func TestTwoNodesLearnTheSameExit(t *testing.T) {
	rdb := redistest.Start(t).Client()
	ctx := context.Background()
	m := newIM(t, imapi.Config{})
	m.stub.CreateGroup(app, "g", "Public", "owner", "peter", "paul")
	a := newChecker(t, m, membership.Config{Redis: rdb})
	b := newChecker(t, m, membership.Config{Redis: rdb})
	must(t, a.Joined(ctx, app, "g", "peter"))

	leaveTwice := func(users ...string) {
		var wg sync.WaitGroup
		for range 20 {
			for _, c := range []*membership.Checker{a, b} {
				wg.Go(func() { must(t, c.Left(ctx, app, "g", users...)) })
			}
		}
		wg.Wait()
	}
	leaveTwice("peter")
	release, verdict := inFlight(t, m, a, "g", "paul")
	leaveTwice("paul")
	release()
	if v := <-verdict; v != membership.NotMember {
		t.Fatalf("paul's Check in flight: %v", v)
	}
	for _, c := range []*membership.Checker{a, b} {
		for _, u := range []string{"peter", "paul"} {
			if v, _ := check(t, c, "g", u); v != membership.NotMember {
				t.Fatalf("%s: %v", u, v)
			}
		}
	}
	if n := m.calls("g"); n != 1 {
		t.Fatalf("%d calls, want only paul's in flight", n)
	}
}
