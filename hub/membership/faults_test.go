package membership_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/imstub"
	"github.com/imhub/imhub/internal/redistest"
)

// When the IM cannot be asked, an answer kept serves while it is within
// the grace past its expiry; without one the verdict is Unavailable, and
// the group is not asked about again for RetryAfter. Each way the IM
// fails, and each answer that is not get_role_in_group's shape
// (https://www.tencentcloud.com/document/product/1047/34963: ActionStatus,
// ErrorCode, ErrorInfo, UserIdList of Member_Account and Role).
func TestIMFaults(t *testing.T) {
	cases := []struct {
		name  string
		cfg   imapi.Config
		fault func(t *testing.T, m *im)
		err   string // what the cold Check's error says
		// marks: the failure stops asks about the group for RetryAfter.
		marks bool
	}{
		{name: "a FAIL answer", fault: setFault(imstub.FaultError), err: "IM error 10002", marks: true},
		{name: "an HTML page", fault: setFault(imstub.FaultHTML), err: "not the IM's JSON", marks: true},
		{name: "an HTTP error", fault: setFault(imstub.FaultHTTP), err: "HTTP 502", marks: true},
		{name: "JSON of another shape", fault: setFault(imstub.FaultGarbage), err: "not the IM's JSON", marks: true},
		{name: "no answer within the deadline", fault: setFault(imstub.FaultHang), err: "deadline exceeded", marks: true},
		{name: "no IM listening", fault: func(_ *testing.T, m *im) { m.srv.Close() }, err: "connect", marks: true},
		// The IM's rate: 60011 (https://www.tencentcloud.com/document/product/1047/34348,
		// REST API public codes; 60007, 60018 and 60019 are alike).
		{name: "the IM's rate limit", fault: func(t *testing.T, m *im) {
			m.stub.SetRate(0.0001, 1)
			_, _ = m.client.RolesInGroup(context.Background(), app, "spend", []string{"x"})
		}, err: "IM error 60011", marks: true},
		// This node's own rate spent says nothing of the IM: nothing is
		// marked, and other nodes still ask.
		{name: "the node's rate spent", cfg: imapi.Config{Rate: 0.001, Burst: 1}, fault: func(*testing.T, *im) {}, err: "spent"},
		{name: "UserIdList not a list", fault: answer(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","UserIdList":"owner"}`), err: "answer's fields", marks: true},
		{name: "the answer names someone else", fault: answer(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","UserIdList":[{"Member_Account":"eve","Role":"Member"}]}`), err: "did not name"},
		{name: "a role the IM does not have", fault: answer(`{"ActionStatus":"OK","ErrorCode":0,"ErrorInfo":"","UserIdList":[{"Member_Account":"owner","Role":"Superuser"},{"Member_Account":"cold","Role":"root"}]}`), err: "did not name"},
		{name: "no ErrorCode", fault: answer(`{"ActionStatus":"OK","UserIdList":[]}`), err: "not the IM's JSON", marks: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Timeout = 300 * time.Millisecond
			m := newIM(t, tc.cfg)
			m.stub.CreateGroup(app, "g", "Public", "owner", "cold", "other")
			clk := newClock()
			c := newChecker(t, m, membership.Config{Now: clk.Now})
			if v, _ := check(t, c, "g", "owner"); v != membership.Member {
				t.Fatalf("before the fault: %v", v)
			}
			tc.fault(t, m)

			// No answer kept: Unavailable, saying why.
			v, err := check(t, c, "g", "cold")
			if v != membership.Unavailable || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("with nothing kept: %v, %v; want unavailable, saying %q", v, err, tc.err)
			}
			if strings.Contains(err.Error(), "usersig") {
				t.Fatalf("the error names the admin's UserSig: %v", err)
			}
			// Another user of the group within RetryAfter: not asked when
			// the failure says the IM fails; asked (tried) when not.
			before := m.requests.Load()
			v, err = check(t, c, "g", "other")
			if v != membership.Unavailable {
				t.Fatalf("a second user: %v", v)
			}
			held := strings.Contains(err.Error(), "a moment ago")
			if held != tc.marks || (held && m.requests.Load() != before) {
				t.Fatalf("a second user within RetryAfter: %v (%d requests more), want it held back: %v", err, m.requests.Load()-before, tc.marks)
			}

			// The owner's answer, expired but within the grace, serves.
			clk.Add(membership.DefaultMemberTTL + membership.DefaultRetryAfter)
			if v, err := check(t, c, "g", "owner"); v != membership.Member {
				t.Fatalf("expired, within the grace: %v, %v; want the kept answer", v, err)
			}
			// Past the grace it does not.
			clk.Add(membership.DefaultStaleGrace)
			if v, _ := check(t, c, "g", "owner"); v != membership.Unavailable {
				t.Fatalf("past the grace: %v, want unavailable", v)
			}
		})
	}
}

func setFault(f imstub.Fault) func(*testing.T, *im) {
	return func(_ *testing.T, m *im) { m.stub.SetFault(f) }
}

func answer(body string) func(*testing.T, *im) {
	return func(_ *testing.T, m *im) { m.answerWith(body) }
}

// A group the IM says has no such id (10015) has no members, as one that
// does not exist (10010).
func TestNoSuchGroup(t *testing.T) {
	m := newIM(t, imapi.Config{})
	m.answerWith(`{"ActionStatus":"FAIL","ErrorCode":10015,"ErrorInfo":"invalid group id"}`)
	c := newChecker(t, m, membership.Config{})
	for range 2 {
		if v, err := check(t, c, "nope", "anyone"); v != membership.NotMember {
			t.Fatalf("%v, %v", v, err)
		}
	}
	if n := m.requests.Load(); n != 1 {
		t.Fatalf("%d requests, want 1: the refusal is kept", n)
	}
}

// With StaleGrace negative, an expired answer never serves.
func TestNoStaleGrace(t *testing.T) {
	m := newIM(t, imapi.Config{})
	m.stub.CreateGroup(app, "g", "Public", "owner")
	clk := newClock()
	c := newChecker(t, m, membership.Config{Now: clk.Now, StaleGrace: -1})
	check(t, c, "g", "owner")
	m.stub.SetFault(imstub.FaultError)
	clk.Add(membership.DefaultMemberTTL + time.Second)
	if v, _ := check(t, c, "g", "owner"); v != membership.Unavailable {
		t.Fatalf("%v, want unavailable", v)
	}
}

// A slow IM delays the Checks that wait for it, not those of other
// groups: a kept answer is given while another group's ask hangs.
func TestSlowIMBlocksNoOtherGroup(t *testing.T) {
	m := newIM(t, imapi.Config{Timeout: time.Minute})
	m.stub.CreateGroup(app, "fast", "Public", "owner")
	m.stub.CreateGroup(app, "slow", "Public", "owner")
	c := newChecker(t, m, membership.Config{AskTimeout: 2 * time.Minute})
	check(t, c, "fast", "owner")
	m.stub.SetDelay(time.Minute)
	slow := make(chan membership.Verdict, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		v, _ := c.Check(ctx, app, "slow", "owner")
		slow <- v
	}()
	waitFor(t, "the slow group's ask", func() bool { return c.WaitingForTest(app, "slow") == 1 })
	if v, _ := check(t, c, "fast", "owner"); v != membership.Member {
		t.Fatalf("the kept group: %v", v)
	}
	select {
	case v := <-slow:
		t.Fatalf("the slow group answered %v first", v)
	default:
	}
	// Its caller giving up ends its wait at once, without an answer.
	cancel()
	if v := <-slow; v != membership.Unavailable {
		t.Fatalf("the slow group's Check given up: %v", v)
	}
}

// A closed Checker asks nothing more: what is kept still serves.
func TestClosed(t *testing.T) {
	m := newIM(t, imapi.Config{})
	m.stub.CreateGroup(app, "g", "Public", "owner", "member")
	c := newChecker(t, m, membership.Config{})
	check(t, c, "g", "owner")
	must(t, c.Close())
	if v, _ := check(t, c, "g", "owner"); v != membership.Member {
		t.Fatalf("kept, after Close: %v", v)
	}
	if _, err := check(t, c, "g", "member"); !errors.Is(err, membership.ErrClosed) {
		t.Fatalf("not kept, after Close: %v, want ErrClosed", err)
	}
}

// With Redis away nothing kept can be read or kept: Checks are
// Unavailable (the IM is not asked: what it answered could not be kept,
// and an exit learnt meanwhile could not be seen), and the callbacks say
// they were not kept.
func TestRedisAway(t *testing.T) {
	srv := redistest.Start(t)
	m := newIM(t, imapi.Config{})
	m.stub.CreateGroup(app, "g", "Public", "owner")
	c := newChecker(t, m, membership.Config{Redis: srv.Client()})
	check(t, c, "g", "owner")
	srv.Stop()
	ctx := context.Background()
	if v, err := check(t, c, "g", "owner"); v != membership.Unavailable {
		t.Fatalf("%v, %v", v, err)
	}
	for name, err := range map[string]error{
		"Joined":    c.Joined(ctx, app, "g", "u"),
		"Left":      c.Left(ctx, app, "g", "u"),
		"Destroyed": c.Destroyed(ctx, app, "g"),
	} {
		if err == nil {
			t.Errorf("%s: no error with Redis away", name)
		}
	}
	if n := m.calls("g"); n != 1 {
		t.Fatalf("%d calls, want the first only", n)
	}
}
