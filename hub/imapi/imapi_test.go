package imapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/internal/imstub"
)

const app = "1400000000"

var keys = map[string][]byte{app: []byte("the-app-secret-key")}

func start(t *testing.T, cfg imapi.Config) (*imstub.Server, *imapi.Client) {
	t.Helper()
	stub := imstub.New(keys, "administrator")
	srv := httptest.NewServer(stub)
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL
	if cfg.Keys == nil {
		cfg.Keys = keys
	}
	c, err := imapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return stub, c
}

func TestRolesInGroup(t *testing.T) {
	stub, c := start(t, imapi.Config{})
	stub.CreateGroup(app, "@TGS#1", "Public", "leckie", "peter")
	roles, err := c.RolesInGroup(context.Background(), app, "@TGS#1", []string{"leckie", "peter", "wesley"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]imapi.Role{"leckie": imapi.RoleOwner, "peter": imapi.RoleMember, "wesley": imapi.RoleNotMember}
	if fmt.Sprint(roles) != fmt.Sprint(want) {
		t.Fatalf("roles %v, want %v", roles, want)
	}
	if !roles["leckie"].Member() || !roles["peter"].Member() || roles["wesley"].Member() {
		t.Fatal("Member() disagrees with the roles")
	}
	if r := stub.Refusals(); len(r) != 0 {
		t.Fatalf("the stand-in refused the client's requests: %v", r)
	}
	if calls, accounts := stub.Calls(app, "@TGS#1"); calls != 1 || accounts != 3 {
		t.Fatalf("%d calls naming %d accounts, want 1 and 3", calls, accounts)
	}
}

func TestRolesInGroupIMAnswers(t *testing.T) {
	stub, c := start(t, imapi.Config{Timeout: 300 * time.Millisecond})
	stub.CreateGroup(app, "live", "AVChatRoom", "host")
	ctx := context.Background()

	var ie *imapi.Error
	if _, err := c.RolesInGroup(ctx, app, "live", []string{"viewer"}); !errors.As(err, &ie) || ie.Code != imapi.CodeNoRoles {
		t.Fatalf("an audio-video group: %v, want IM error %d", err, imapi.CodeNoRoles)
	}
	if _, err := c.RolesInGroup(ctx, app, "gone", []string{"viewer"}); !errors.As(err, &ie) || ie.Code != imstub.CodeNoGroup {
		t.Fatalf("no such group: %v, want IM error %d", err, imstub.CodeNoGroup)
	}
	for _, c2 := range []struct {
		fault imstub.Fault
		want  string
	}{
		{imstub.FaultError, "IM error 10002"},
		{imstub.FaultHTML, "not the IM's JSON"},
		{imstub.FaultHTTP, "HTTP 502"},
		{imstub.FaultGarbage, "not the IM's JSON"},
		{imstub.FaultHang, "deadline exceeded"},
	} {
		stub.SetFault(c2.fault)
		_, err := c.RolesInGroup(ctx, app, "live", []string{"viewer"})
		if err == nil || !strings.Contains(err.Error(), c2.want) {
			t.Errorf("fault %d: %v, want an error saying %q", c2.fault, err, c2.want)
		}
		if err != nil && strings.Contains(err.Error(), "usersig") {
			t.Errorf("fault %d: the error names the admin's UserSig: %v", c2.fault, err)
		}
	}
}

func TestRolesInGroupRefusesWhatTheIMWouldNot(t *testing.T) {
	_, c := start(t, imapi.Config{})
	ctx := context.Background()
	if _, err := c.RolesInGroup(ctx, app, "g", nil); err == nil {
		t.Error("asked about no account")
	}
	if _, err := c.RolesInGroup(ctx, app, "g", make([]string, imapi.MaxAccounts+1)); err == nil {
		t.Error("asked about 501 accounts")
	}
	if _, err := c.RolesInGroup(ctx, "1400000009", "g", []string{"a"}); err == nil {
		t.Error("called for an app without a key")
	}
}

// The stand-in checks the admin's UserSig: a client with another key is
// refused, and so is one signing as another account.
func TestStandInChecksTheAdminSig(t *testing.T) {
	stub, c := start(t, imapi.Config{Keys: map[string][]byte{app: []byte("a wrong key")}})
	stub.CreateGroup(app, "g", "Public", "o")
	var ie *imapi.Error
	if _, err := c.RolesInGroup(context.Background(), app, "g", []string{"o"}); !errors.As(err, &ie) || ie.Code != imstub.CodeBadSig {
		t.Fatalf("another key: %v, want IM error %d", err, imstub.CodeBadSig)
	}
	stub2, c2 := start(t, imapi.Config{Admin: "someone"})
	stub2.CreateGroup(app, "g", "Public", "o")
	if _, err := c2.RolesInGroup(context.Background(), app, "g", []string{"o"}); !errors.As(err, &ie) || ie.Code != imstub.CodeNotAdmin {
		t.Fatalf("not the admin: %v, want IM error %d", err, imstub.CodeNotAdmin)
	}
}

// The client signs the admin's UserSig itself and uses it for as long as
// it has more than a tenth of its life left, then signs a new one, which
// the IM takes: a hub never runs with an expired admin UserSig.
func TestAdminSigRenewed(t *testing.T) {
	stub := imstub.New(keys, "administrator")
	var (
		mu   sync.Mutex
		sigs []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		sigs = append(sigs, r.URL.Query().Get("usersig"))
		mu.Unlock()
		stub.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// The stand-in checks the UserSigs by the real clock: the client's
	// starts in the past, so that the renewal is due within the real
	// life of the first UserSig.
	start := time.Now().Add(-56 * time.Minute).Truncate(time.Second)
	clock := start
	c, err := imapi.New(imapi.Config{BaseURL: srv.URL, Keys: keys, SigTTL: time.Hour, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return clock
	}})
	if err != nil {
		t.Fatal(err)
	}
	stub.CreateGroup(app, "g", "Public", "o")
	for _, at := range []time.Duration{0, 30 * time.Minute, 53 * time.Minute, 55 * time.Minute} {
		mu.Lock()
		clock = start.Add(at)
		mu.Unlock()
		if _, err := c.RolesInGroup(context.Background(), app, "g", []string{"o"}); err != nil {
			t.Fatalf("at %v: %v", at, err)
		}
	}
	if len(sigs) != 4 {
		t.Fatalf("%d calls, want 4", len(sigs))
	}
	for i, want := range []time.Duration{0, 0, 0, 55 * time.Minute} {
		u, err := auth.ReadUserSig(sigs[i])
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if u.User != "administrator" || u.App != app || !u.Issued.Equal(start.Add(want)) || u.Expires.Sub(u.Issued) != time.Hour {
			t.Errorf("call %d: a UserSig of %s for %s issued %v until %v, want the admin's issued %v for an hour", i, u.User, u.App, u.Issued, u.Expires, start.Add(want))
		}
	}
	if sigs[0] != sigs[2] || sigs[2] == sigs[3] {
		t.Error("the first three calls do not share one UserSig, or the fourth has none of its own")
	}
}

// The stand-in refuses bodies and queries off the documented shape.
func TestStandInChecksRequests(t *testing.T) {
	stub := imstub.New(keys, "administrator")
	srv := httptest.NewServer(stub)
	defer srv.Close()
	for _, c := range []struct{ name, query, body string }{
		{"no random", "sdkappid=" + app + "&identifier=administrator&usersig=x&contenttype=json", `{"GroupId":"g","User_Account":["a"]}`},
		{"a wrong usersig", "sdkappid=" + app + "&identifier=administrator&usersig=x&random=1&contenttype=json", `{"GroupId":"g","User_Account":["a"]}`},
	} {
		resp, err := http.Post(srv.URL+"/v4/group_open_http_svc/get_role_in_group?"+c.query, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if r := stub.Refusals(); len(r) != 2 || !strings.Contains(r[0], "random") || !strings.Contains(r[1], "usersig") {
		t.Fatalf("refusals %q", r)
	}
}

func TestRolesInGroupKeepsToItsRate(t *testing.T) {
	stub, c := start(t, imapi.Config{Rate: 1, Burst: 2, Timeout: 200 * time.Millisecond})
	stub.CreateGroup(app, "g", "Public", "o")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := c.RolesInGroup(ctx, app, "g", []string{"o"}); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	// A third within the same second would wait past the deadline.
	if _, err := c.RolesInGroup(ctx, app, "g", []string{"o"}); !errors.Is(err, imapi.ErrRateSpent) {
		t.Fatalf("past the rate: %v, want ErrRateSpent", err)
	}
	if calls, _ := stub.Calls(app, "g"); calls != 2 {
		t.Fatalf("the IM was called %d times, want 2", calls)
	}
}

func TestStandInRateLimits(t *testing.T) {
	stub, c := start(t, imapi.Config{})
	stub.CreateGroup(app, "g", "Public", "o")
	stub.SetRate(1, 1)
	ctx := context.Background()
	if _, err := c.RolesInGroup(ctx, app, "g", []string{"o"}); err != nil {
		t.Fatal(err)
	}
	var ie *imapi.Error
	if _, err := c.RolesInGroup(ctx, app, "g", []string{"o"}); !errors.As(err, &ie) || ie.Code != imstub.CodeRateLimited {
		t.Fatalf("over the IM's rate: %v, want IM error %d", err, imstub.CodeRateLimited)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "https://", "https://user:pw@x", "https://x/?a=1"} {
		if _, err := imapi.New(imapi.Config{BaseURL: u}); err == nil {
			t.Errorf("took %q", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("the error repeats a password: %v", err)
		}
	}
}

// A call whose caller gave up before it was made says so: it is not a
// rate spent, which would tell the caller to count it as the IM's load.
func TestRolesInGroupCanceledIsNotRateSpent(t *testing.T) {
	stub, c := start(t, imapi.Config{})
	stub.CreateGroup(app, "g", "Public", "o")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.RolesInGroup(ctx, app, "g", []string{"o"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, imapi.ErrRateSpent) {
		t.Fatalf("a canceled call: %v, want context.Canceled and not ErrRateSpent", err)
	}
	if calls, _ := stub.Calls(app, "g"); calls != 0 {
		t.Fatalf("the IM was called %d times", calls)
	}
}

// Each call is counted by its result, and the time of each call made is
// observed.
func TestMetricsCountEachResult(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := imapi.NewMetrics(reg)
	stub, c := start(t, imapi.Config{Timeout: 300 * time.Millisecond, Burst: 10, Metrics: m})
	stub.CreateGroup(app, "g", "Public", "o")
	ctx := context.Background()
	ask := func(c *imapi.Client, ctx context.Context) { _, _ = c.RolesInGroup(ctx, app, "g", []string{"o"}) }
	ask(c, ctx)
	for _, f := range []imstub.Fault{imstub.FaultError, imstub.FaultHTML, imstub.FaultHang} {
		stub.SetFault(f)
		ask(c, ctx)
	}
	stub.SetFault(imstub.FaultNone)
	stub.SetRate(1, 1)
	ask(c, ctx)
	ask(c, ctx) // over the stand-in's rate
	stub.SetRate(0, 0)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	ask(c, canceled)
	// A client of its own rate, sharing the metrics: its second call
	// would wait a thousand seconds.
	c2, err := imapi.New(imapi.Config{BaseURL: c.BaseURLForTest(), Keys: keys, Rate: 0.001, Burst: 1, Timeout: 300 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ask(c2, ctx)
	ask(c2, ctx)

	want := map[string]float64{"ok": 3, "fail": 1, "error": 1, "timeout": 1, "rate_limited": 1, "rate_spent": 1, "canceled": 1}
	got := map[string]float64{}
	var observed uint64
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["app"] != app || labels["api"] != "get_role_in_group" {
				t.Errorf("%s has labels %v", f.GetName(), labels)
			}
			switch f.GetName() {
			case "imhub_im_api_calls_total":
				got[labels["result"]] += mt.GetCounter().GetValue()
			case "imhub_im_api_seconds":
				observed += mt.GetHistogram().GetSampleCount()
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls by result %v, want %v", got, want)
	}
	// Every call made is timed; the two not made (rate spent, canceled)
	// are not.
	if observed != 7 {
		t.Errorf("%d calls timed, want 7", observed)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) != 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// The codes the IM documents for its rate are told apart from other FAIL
// answers.
func TestErrorRateLimited(t *testing.T) {
	for code, want := range map[int]bool{60007: true, 60011: true, 60018: true, 60019: true, 10006: true,
		10002: false, imapi.CodeNoRoles: false, 10010: false, 70003: false} {
		if got := (&imapi.Error{Code: code}).RateLimited(); got != want {
			t.Errorf("code %d: RateLimited %v, want %v", code, got, want)
		}
	}
}
