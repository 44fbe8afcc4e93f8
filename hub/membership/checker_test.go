package membership_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/redistest"
)

// The verdicts, by what the IM answers and what the callbacks said. The
// IM's shapes are those of get_role_in_group
// (https://www.tencentcloud.com/document/product/1047/34963): roles
// Owner, Admin, Member and NotMember; 10007 for an audio-video group;
// 10010 for a group that does not exist.
func TestVerdicts(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		setup func(m *im, c *membership.Checker, g string)
		user  string
		group string // the group's id when not the case's own
		want  membership.Verdict
		calls int
	}{
		{name: "the owner, asked", setup: public("owner", "member"), user: "owner", want: membership.Member, calls: 1},
		{name: "a member, asked", setup: public("owner", "member"), user: "member", want: membership.Member, calls: 1},
		{name: "not a member, asked", setup: public("owner", "member"), user: "stranger", want: membership.NotMember, calls: 1},
		{name: "a group the IM does not have", setup: func(*im, *membership.Checker, string) {}, user: "anyone", want: membership.NotMember, calls: 1},
		{name: "an audio-video group admits anyone", setup: func(m *im, _ *membership.Checker, g string) {
			m.stub.CreateGroup(app, g, "AVChatRoom", "host")
		}, user: "viewer", want: membership.Member, calls: 1},
		// The callbacks answer for a group no one asked about.
		{name: "joined, by callback", setup: func(_ *im, c *membership.Checker, g string) {
			must(t, c.Joined(ctx, app, g, "newcomer"))
		}, user: "newcomer", want: membership.Member},
		{name: "made with its members, by callback", setup: func(_ *im, c *membership.Checker, g string) {
			must(t, c.Joined(ctx, app, g, "owner", "m1", "m2"))
		}, user: "m2", want: membership.Member},
		{name: "left, by callback", setup: func(m *im, c *membership.Checker, g string) {
			m.stub.CreateGroup(app, g, "Public", "owner", "member")
			must(t, c.Left(ctx, app, g, "member"))
		}, user: "member", want: membership.NotMember},
		{name: "disbanded, by callback", setup: func(m *im, c *membership.Checker, g string) {
			m.stub.CreateGroup(app, g, "Public", "owner", "member")
			must(t, c.Destroyed(ctx, app, g))
		}, user: "member", want: membership.NotMember},
		{name: "disbanded, then made again", setup: func(_ *im, c *membership.Checker, g string) {
			must(t, c.Destroyed(ctx, app, g))
			must(t, c.Joined(ctx, app, g, "owner"))
		}, user: "owner", want: membership.Member},
		// Ids the IM cannot give are nobody's groups, asked about or kept.
		{name: "no user", setup: public("owner"), user: "", want: membership.NotMember},
		{name: "a user id too long", setup: public("owner"), user: strings.Repeat("u", membership.MaxIDBytes+1), want: membership.NotMember},
		{name: "no group", group: "-", user: "owner", want: membership.NotMember},
		{name: "a group id too long", group: strings.Repeat("g", membership.MaxIDBytes+1), user: "owner", want: membership.NotMember},
	}
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		m := newIM(t, imapi.Config{})
		c := newChecker(t, m, membership.Config{Redis: rdb})
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				g := "@TGS#" + string(rune('A'+i))
				switch tc.group {
				case "":
				case "-":
					g = ""
				default:
					g = tc.group
				}
				if tc.setup != nil {
					tc.setup(m, c, g)
				}
				v, _ := check(t, c, g, tc.user)
				if v != tc.want {
					t.Errorf("verdict %v, want %v", v, tc.want)
				}
				if n := m.calls(g); n != tc.calls {
					t.Errorf("%d calls of the IM, want %d", n, tc.calls)
				}
				// Asked again, the kept answer serves.
				if v, _ := check(t, c, g, tc.user); v != tc.want {
					t.Errorf("asked again: verdict %v, want %v", v, tc.want)
				}
				if n := m.calls(g); n != tc.calls {
					t.Errorf("asked again: %d calls of the IM, want %d", n, tc.calls)
				}
			})
		}
	})
}

// public is a setup that makes a Public group of owner and members at the
// stand-in.
func public(owner string, members ...string) func(*im, *membership.Checker, string) {
	return func(m *im, _ *membership.Checker, g string) { m.stub.CreateGroup(app, g, "Public", owner, members...) }
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// An audio-video group is kept as such: every other user of the app is
// admitted without asking again; one who left is refused while the exit
// is kept.
func TestAVChatRoom(t *testing.T) {
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		m := newIM(t, imapi.Config{})
		m.stub.CreateGroup(app, "live", "AVChatRoom", "host")
		c := newChecker(t, m, membership.Config{Redis: rdb})
		for _, u := range []string{"v1", "v2", "v3"} {
			if v, _ := check(t, c, "live", u); v != membership.Member {
				t.Fatalf("%s: %v, want member", u, v)
			}
		}
		if n := m.calls("live"); n != 1 {
			t.Fatalf("%d calls, want 1: the audio-video fact is kept for the group", n)
		}
		must(t, c.Left(context.Background(), app, "live", "v2"))
		if v, _ := check(t, c, "live", "v2"); v != membership.NotMember {
			t.Fatalf("after leaving: %v, want not member", v)
		}
		if v, _ := check(t, c, "live", "v4"); v != membership.Member {
			t.Fatalf("another viewer: %v, want member", v)
		}
	})
}

// Checks are counted by result.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := newIM(t, imapi.Config{})
	m.stub.CreateGroup(app, "g", "Public", "owner", "member")
	c := newChecker(t, m, membership.Config{Registerer: reg})
	check(t, c, "g", "owner")    // asked
	check(t, c, "g", "member")   // asked
	check(t, c, "g", "member")   // kept
	check(t, c, "g", "stranger") // refused
	m.stub.SetFault(4)           // imstub.FaultGarbage
	check(t, c, "g2", "owner")   // unavailable
	want := `
# HELP imhub_membership_checks_total Membership checks by result: kept (a member, by an answer kept, on any node, or by a callback), asked (a member, by asking the IM), refused (not a member, however known), unavailable (the IM could not be asked and no kept answer served).
# TYPE imhub_membership_checks_total counter
imhub_membership_checks_total{result="asked"} 2
imhub_membership_checks_total{result="kept"} 1
imhub_membership_checks_total{result="refused"} 1
imhub_membership_checks_total{result="unavailable"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "imhub_membership_checks_total"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// NewChecker refuses what it cannot run with.
func TestNewCheckerRefuses(t *testing.T) {
	m := newIM(t, imapi.Config{})
	for _, cfg := range []membership.Config{
		{},
		{IM: m.client, MemberTTL: -1},
		{IM: m.client, NonMemberTTL: -1},
		{IM: m.client, Window: -1},
		{IM: m.client, AskTimeout: -1},
		{IM: m.client, RetryAfter: -1},
		{IM: m.client, PollMax: -1},
		{IM: m.client, MaxKept: -1},
	} {
		if _, err := membership.NewChecker(cfg); err == nil {
			t.Errorf("took %+v", cfg)
		}
	}
}

// A member's answer is kept MemberTTL, a refusal NonMemberTTL; then the IM
// is asked again and its new answer serves.
func TestTTLs(t *testing.T) {
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		m := newIM(t, imapi.Config{})
		m.stub.CreateGroup(app, "g", "Public", "owner", "member")
		clk := newClock()
		c := newChecker(t, m, membership.Config{Redis: rdb, Now: clk.Now, MemberTTL: 3 * time.Minute})
		step := func(user string, want membership.Verdict, calls int) {
			t.Helper()
			if v, _ := check(t, c, "g", user); v != want {
				t.Fatalf("%s: %v, want %v", user, v, want)
			}
			if n := m.calls("g"); n != calls {
				t.Fatalf("%s: %d calls, want %d", user, n, calls)
			}
		}
		step("member", membership.Member, 1)
		step("stranger", membership.NotMember, 2)
		m.stub.Leave(app, "g", "member") // the exit's callback is lost
		m.stub.Join(app, "g", "stranger")
		clk.Add(time.Minute - time.Second)
		step("member", membership.Member, 2)
		step("stranger", membership.NotMember, 2)
		clk.Add(2 * time.Second) // the refusal has expired
		step("stranger", membership.Member, 3)
		step("member", membership.Member, 3)
		clk.Add(2 * time.Minute) // and the member's answer
		step("member", membership.NotMember, 4)
	})
}

// What Redis keeps that does not read as an entry is no answer: the
// Check is Unavailable, saying so, never a grant.
func TestCorruptKeptEntry(t *testing.T) {
	rdb := redistest.Start(t).Client()
	m := newIM(t, imapi.Config{})
	c := newChecker(t, m, membership.Config{Redis: rdb})
	for _, v := range []string{"Member", "Member soon 1 c", "Member 1 2 x", ""} {
		must(t, rdb.HSet(context.Background(), membership.HashKeyForTest("imhub", app, "g"), "u:owner", v).Err())
		got, err := check(t, c, "g", "owner")
		if v == "" {
			continue // HMGET reads "" as nothing kept: the IM is asked
		}
		if got != membership.Unavailable || !strings.Contains(err.Error(), "the entry of owner") {
			t.Errorf("%q: %v, %v", v, got, err)
		}
	}
}

// A member named only in a group's creation is a member at once, without
// asking the IM; a user it does not name is not (the IM says so). An
// audio-video group made so admits everyone, also before the IM could be
// asked.
func TestCreated(t *testing.T) {
	stores(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		m := newIM(t, imapi.Config{})
		c := newChecker(t, m, membership.Config{Redis: rdb})
		must(t, c.Created(ctx, app, "@TGS#new", "Public", "leckie", "leckie", "bob", "peter"))
		for _, u := range []string{"leckie", "bob", "peter"} {
			if v, _ := check(t, c, "@TGS#new", u); v != membership.Member {
				t.Fatalf("%s, named by the creation: %v, want member", u, v)
			}
		}
		if n := m.calls("@TGS#new"); n != 0 {
			t.Fatalf("%d calls: a member the creation named is not asked about", n)
		}
		if v, _ := check(t, c, "@TGS#new", "mallory"); v != membership.NotMember {
			t.Fatalf("a user the creation did not name: %v, want not member", v)
		}

		m.answerWith(`{"ActionStatus":"FAIL","ErrorCode":70001,"ErrorInfo":"the IM is away"}`)
		before := m.requests.Load()
		must(t, c.Created(ctx, app, "@TGS#live", "AVChatRoom", ""))
		for _, u := range []string{"v1", "v2"} {
			if v, _ := check(t, c, "@TGS#live", u); v != membership.Member {
				t.Fatalf("%s in an audio-video group just made: %v, want member", u, v)
			}
		}
		if n := m.requests.Load() - before; n != 0 {
			t.Fatalf("%d requests: an audio-video group's creation says all there is", n)
		}
		must(t, c.Left(ctx, app, "@TGS#live", "v2"))
		if v, _ := check(t, c, "@TGS#live", "v2"); v != membership.NotMember {
			t.Fatalf("after leaving: %v, want not member", v)
		}
		must(t, c.Destroyed(ctx, app, "@TGS#live"))
		if v, _ := check(t, c, "@TGS#live", "v1"); v != membership.NotMember {
			t.Fatalf("after the disbanding: %v, want not member", v)
		}
	})
}
