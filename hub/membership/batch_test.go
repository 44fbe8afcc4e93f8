package membership_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/redistest"
)

// users are n user ids, u0 to u<n-1>.
func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint("u", i)
	}
	return out
}

// checkAll checks every user of group through checkers in turn, at once,
// and returns the verdicts by user. ready, when set, is called once every
// Check is waiting for an ask or done.
func checkAll(t *testing.T, checkers []*membership.Checker, group string, us []string, ready func()) map[string]membership.Verdict {
	t.Helper()
	var (
		mu   sync.Mutex
		got  = make(map[string]membership.Verdict, len(us))
		done atomic.Int64
		wg   sync.WaitGroup
	)
	for i, u := range us {
		wg.Go(func() {
			v, err := checkers[i%len(checkers)].Check(context.Background(), app, group, u)
			if err != nil {
				t.Errorf("%s: %v", u, err)
			}
			mu.Lock()
			got[u] = v
			mu.Unlock()
			done.Add(1)
		})
	}
	if ready != nil {
		waitFor(t, "every Check to wait for its ask", func() bool {
			n := int(done.Load())
			for _, c := range checkers {
				n += c.ChecksWaitingForTest(app, group)
			}
			return n == len(us)
		})
		ready()
	}
	wg.Wait()
	return got
}

// The users asked about for one group within the window go in one
// get_role_in_group call; more than the IM's 500 accounts in as few calls
// as they fit.
func TestBatching(t *testing.T) {
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		m := newIM(t, imapi.Config{})
		// The window ends only when the test says so.
		c := newChecker(t, m, membership.Config{Redis: rdb, Window: time.Hour})
		for _, n := range []int{1, 2, imapi.MaxAccounts - 1, imapi.MaxAccounts, imapi.MaxAccounts + 1, 1200, 2000} {
			g := fmt.Sprint("g", n)
			us := users(n)
			m.stub.CreateGroup(app, g, "Public", us[0], us[1:]...)
			got := checkAll(t, []*membership.Checker{c}, g, us, c.FlushForTest)
			for _, u := range us {
				if got[u] != membership.Member {
					t.Fatalf("%d users: %s is %v", n, u, got[u])
				}
			}
			calls, accounts := m.stub.Calls(app, g)
			if want := (n + imapi.MaxAccounts - 1) / imapi.MaxAccounts; calls != want || accounts != n {
				t.Errorf("%d users: %d calls naming %d accounts, want %d and %d", n, calls, accounts, want, n)
			}
		}
	})
}

// Checks of one user at once share one ask.
func TestOneAskPerUser(t *testing.T) {
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		m := newIM(t, imapi.Config{})
		m.stub.CreateGroup(app, "g", "Public", "owner")
		c := newChecker(t, m, membership.Config{Redis: rdb, Window: time.Hour})
		same := make([]string, 100)
		for i := range same {
			same[i] = "owner"
		}
		var wg sync.WaitGroup
		verdicts := make([]membership.Verdict, len(same))
		for i := range same {
			wg.Go(func() { verdicts[i], _ = c.Check(context.Background(), app, "g", "owner") })
		}
		waitFor(t, "the Checks to wait", func() bool { return c.ChecksWaitingForTest(app, "g") == len(same) })
		if n := c.WaitingForTest(app, "g"); n != 1 {
			t.Fatalf("%d users waiting, want 1", n)
		}
		c.FlushForTest()
		wg.Wait()
		for i, v := range verdicts {
			if v != membership.Member {
				t.Fatalf("Check %d: %v", i, v)
			}
		}
		if calls, accounts := m.stub.Calls(app, "g"); calls != 1 || accounts != 1 {
			t.Fatalf("%d calls naming %d accounts, want 1 and 1", calls, accounts)
		}
	})
}

// A reconnect storm: the clients of many groups check at once through two
// nodes on one Redis. No user is asked about twice, whichever node it
// reaches; a second storm within the TTL asks nothing.
func TestReconnectStorm(t *testing.T) {
	rdb := redistest.Start(t).Client()
	m := newIM(t, imapi.Config{})
	nodes := []*membership.Checker{
		newChecker(t, m, membership.Config{Redis: rdb}),
		newChecker(t, m, membership.Config{Redis: rdb}),
	}
	const groups, perGroup = 20, 60
	us := users(perGroup)
	for g := range groups {
		m.stub.CreateGroup(app, fmt.Sprint("g", g), "Public", us[0], us[1:]...)
	}
	storm := func() {
		var wg sync.WaitGroup
		for g := range groups {
			wg.Go(func() {
				got := checkAll(t, nodes, fmt.Sprint("g", g), us, nil)
				for _, u := range us {
					if got[u] != membership.Member {
						t.Errorf("g%d: %s is %v", g, u, got[u])
					}
				}
			})
		}
		wg.Wait()
	}
	storm()
	total := 0
	for g := range groups {
		calls, accounts := m.stub.Calls(app, fmt.Sprint("g", g))
		if accounts != perGroup {
			t.Errorf("g%d: %d accounts asked about in %d calls, want each of the %d once", g, accounts, calls, perGroup)
		}
		total += calls
	}
	storm()
	again := 0
	for g := range groups {
		calls, _ := m.stub.Calls(app, fmt.Sprint("g", g))
		again += calls
	}
	if again != total {
		t.Fatalf("the second storm called the IM %d times", again-total)
	}
	t.Logf("%d groups of %d users through two nodes: %d calls", groups, perGroup, total)
}

// While another node asks about a group, both nodes' users of it wait in
// the group's queue, and go in one call (per 500) once that ask is over:
// one call per group for everything asked meanwhile.
func TestStormWhileAnotherNodeAsks(t *testing.T) {
	rdb := redistest.Start(t).Client()
	stormWhileAnotherNodeAsks(t, rdb, rdb)
}

func stormWhileAnotherNodeAsks(t *testing.T, a, b redis.UniversalClient) {
	m := newIM(t, imapi.Config{})
	nodes := []*membership.Checker{
		newChecker(t, m, membership.Config{Redis: a}),
		newChecker(t, m, membership.Config{Redis: b}),
	}
	ctx := context.Background()
	sizes := map[string]int{"small": 1, "g60": 60, "g700": 700}
	for g, n := range sizes {
		us := users(n)
		m.stub.CreateGroup(app, g, "Public", us[0], us[1:]...)
		// A third node holds each group's ask.
		end := time.Now().Add(time.Hour).UnixMilli()
		must(t, a.HSet(ctx, membership.HashKeyForTest("imhub", app, g), "m:lease", "a third node", "m:leaseend", end).Err())
	}
	var wg sync.WaitGroup
	for g, n := range sizes {
		wg.Go(func() {
			got := checkAll(t, nodes, g, users(n), func() {
				waitFor(t, "every user queued", func() bool {
					q, err := a.SCard(ctx, membership.QueueKeyForTest("imhub", app, g)).Result()
					return err == nil && q == int64(n)
				})
				// Its ask is over.
				must(t, a.HDel(ctx, membership.HashKeyForTest("imhub", app, g), "m:lease", "m:leaseend").Err())
			})
			for u, v := range got {
				if v != membership.Member {
					t.Errorf("%s: %s is %v", g, u, v)
				}
			}
		})
	}
	wg.Wait()
	for g, n := range sizes {
		calls, accounts := m.stub.Calls(app, g)
		if want := (n + imapi.MaxAccounts - 1) / imapi.MaxAccounts; calls != want || accounts != n {
			t.Errorf("%s: %d calls naming %d accounts, want %d and %d", g, calls, accounts, want, n)
		}
	}
}
