package membership_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/redistest"
)

func viewCheck(t *testing.T, v *membership.View, group, user string) membership.Verdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	verdict, _ := v.Check(ctx, app, group, user)
	return verdict
}

// An exit whose write to the shared store fails (Redis takes no writes)
// leaves every node's shared answer "a member". The node that took the
// callback refuses the user all the same, and so does every node the
// event reaches; a join learnt afterwards lets the user in again, and the
// record lapses after NonMemberTTL.
func TestViewRefusesWhatTheStoreMissed(t *testing.T) {
	srv := redistest.Start(t)
	m := newIM(t, imapi.Config{})
	m.stub.CreateGroup(app, "g", "Public", "owner", "jared", "tommy")
	clk := newClock()
	reg := prometheus.NewRegistry()
	cfg := membership.Config{Redis: srv.Client(), NonMemberTTL: time.Minute, Now: clk.Now, Registerer: reg}
	a := membership.NewView(newChecker(t, m, cfg), app)
	cfg.Registerer = nil
	bChecker := newChecker(t, m, cfg)
	b := membership.NewView(bChecker, app)
	for _, v := range []*membership.View{a, b} {
		for _, u := range []string{"jared", "tommy"} {
			if got := viewCheck(t, v, "g", u); got != membership.Member {
				t.Fatalf("%s: %v before anything changed", u, got)
			}
		}
	}

	// Redis takes reads, not writes, for a while: the exit is not stored.
	ctx := context.Background()
	if err := srv.Client().Do(ctx, "CLIENT", "PAUSE", "3000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := a.Left(wctx, app, "g", "jared")
	cancel()
	if err == nil {
		t.Fatal("the exit was stored while Redis took no writes")
	}
	if n := testutil.ToFloat64(counterOf(t, reg, "imhub_membership_unstored_total")); n != 1 {
		t.Errorf("unstored %v, want 1", n)
	}
	if got, _ := bChecker.Check(ctx, app, "g", "jared"); got != membership.Member {
		t.Fatalf("the shared answer is %v: the test means it to be stale", got)
	}
	if got := viewCheck(t, a, "g", "jared"); got != membership.NotMember {
		t.Errorf("the node that took the exit: %v", got)
	}
	if got := viewCheck(t, b, "g", "jared"); got != membership.Member {
		t.Fatalf("node b before the event reached it: %v", got)
	}
	b.Saw(app, callback.MemberChange{Kind: callback.ChangeLeft, Group: "g", Users: []string{"jared"}})
	b.Saw(app, callback.MemberChange{Kind: callback.ChangeLeft, Group: "g", Users: []string{"jared"}}) // again: no matter
	if got := viewCheck(t, b, "g", "jared"); got != membership.NotMember {
		t.Errorf("node b once the event reached it: %v", got)
	}
	if got := viewCheck(t, b, "g", "tommy"); got != membership.Member {
		t.Errorf("tommy, not named: %v", got)
	}
	b.Saw("1400000009", callback.MemberChange{Kind: callback.ChangeDestroyed, Group: "g"})
	if got := viewCheck(t, b, "g", "tommy"); got != membership.Member {
		t.Errorf("an app the view does not govern changes nothing: %v", got)
	}

	// A join seen later undoes the exit; the record of a disbanding
	// refuses everyone but those who joined after it.
	b.Saw(app, callback.MemberChange{Kind: callback.ChangeJoined, Group: "g", Users: []string{"jared"}})
	if got := viewCheck(t, b, "g", "jared"); got != membership.Member {
		t.Errorf("after a join: %v", got)
	}
	b.Saw(app, callback.MemberChange{Kind: callback.ChangeDestroyed, Group: "g"})
	if got := viewCheck(t, b, "g", "tommy"); got != membership.NotMember {
		t.Errorf("tommy once the group was disbanded: %v", got)
	}
	b.Saw(app, callback.MemberChange{Kind: callback.ChangeJoined, Group: "g", Users: []string{"tommy"}})
	if got := viewCheck(t, b, "g", "tommy"); got != membership.Member {
		t.Errorf("tommy, joined after the disbanding: %v", got)
	}

	// Past NonMemberTTL the shared answers judge again.
	clk.Add(time.Minute + time.Second)
	if got := viewCheck(t, a, "g", "jared"); got == membership.NotMember {
		t.Errorf("the record outlived NonMemberTTL: %v", got)
	}
}

// counterOf finds a counter registered with reg.
func counterOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
}

// A View writes through to its Checker, for the apps it governs only.
func TestViewWritesThrough(t *testing.T) {
	m := newIM(t, imapi.Config{})
	m.stub.CreateGroup(app, "g", "Public", "owner", "jared")
	c := newChecker(t, m, membership.Config{})
	v := membership.NewView(c, app)
	ctx := context.Background()
	must(t, v.Joined(ctx, app, "g", "newcomer"))
	must(t, v.Left(ctx, app, "g", "jared"))
	for user, want := range map[string]membership.Verdict{"newcomer": membership.Member, "jared": membership.NotMember} {
		if got, _ := c.Check(ctx, app, "g", user); got != want {
			t.Errorf("%s: the checker says %v, want %v", user, got, want)
		}
	}
	must(t, v.Destroyed(ctx, app, "g"))
	if got, _ := c.Check(ctx, app, "g", "newcomer"); got != membership.NotMember {
		t.Errorf("after the disbanding: %v", got)
	}
	must(t, v.Left(ctx, "1400000009", "g", "owner"))
	if got := m.calls("g"); got != 0 {
		t.Errorf("%d calls of the IM", got)
	}
	if v.Governs("1400000009") || !v.Governs(app) {
		t.Error("Governs")
	}
}
