package imstub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/imstub"
	"github.com/imhub/imhub/internal/redistest"
)

const (
	app   = "1400000000"
	key   = "the key of the stand-in's test app"
	admin = "administrator"
)

// roles asks srv for the roles of accounts in group, as the hub does, and
// returns the answer's Role of each, or its ErrorCode when it failed.
func roles(t *testing.T, srv *httptest.Server, group string, accounts ...string) (map[string]string, int) {
	t.Helper()
	sig, err := auth.SignUserSig([]byte(key), app, admin, time.Now(), time.Hour)
	require.NoError(t, err)
	q := url.Values{"sdkappid": {app}, "identifier": {admin}, "usersig": {sig}, "random": {"7"}, "contenttype": {"json"}}
	body, _ := json.Marshal(map[string]any{"GroupId": group, "User_Account": accounts})
	resp, err := http.Post(srv.URL+"/v4/group_open_http_svc/get_role_in_group?"+q.Encode(), "application/json", strings.NewReader(string(body)))
	require.NoError(t, err)
	defer resp.Body.Close()
	var a struct {
		ErrorCode  int
		UserIdList []struct{ Member_Account, Role string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&a))
	out := map[string]string{}
	for _, u := range a.UserIdList {
		out[u.Member_Account] = u.Role
	}
	return out, a.ErrorCode
}

func stores(t *testing.T) map[string]func() imstub.Store {
	return map[string]func() imstub.Store{
		"memory": func() imstub.Store { return imstub.NewMemoryStore() },
		"redis": func() imstub.Store {
			r := redistest.Start(t)
			return imstub.NewRedisStore(r.Client(), "")
		},
	}
}

// Two stand-ins on one store answer alike, whichever of them was told of
// a change: the nodes of a local cluster each run one.
func TestSharedStore(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open()
			ctx := context.Background()
			var srvs []*httptest.Server
			var stubs []*imstub.Server
			for range 2 {
				s := imstub.NewServer(imstub.Config{Keys: map[string][]byte{app: []byte(key)}, Admin: admin, Store: st})
				stubs = append(stubs, s)
				h := httptest.NewServer(s)
				t.Cleanup(h.Close)
				srvs = append(srvs, h)
			}
			require.NoError(t, stubs[0].Joined(ctx, app, "G", "jared", "leah"))
			require.NoError(t, stubs[1].Left(ctx, app, "G", "leah"))
			require.NoError(t, stubs[0].CreateGroup(app, "AV", "AVChatRoom", "omar"))
			for _, srv := range srvs {
				got, code := roles(t, srv, "G", "jared", "leah")
				assert.Zero(t, code)
				assert.Equal(t, map[string]string{"jared": "Member", "leah": "NotMember"}, got)
				_, code = roles(t, srv, "AV", "jared")
				assert.Equal(t, imstub.CodeNoRoles, code)
			}
			groups, err := stubs[1].GroupsOf(ctx, app, "jared")
			require.NoError(t, err)
			assert.Equal(t, []string{"G"}, groups)

			require.NoError(t, stubs[1].Destroyed(ctx, app, "G"))
			for _, srv := range srvs {
				_, code := roles(t, srv, "G", "jared")
				assert.Equal(t, imstub.CodeNoGroup, code)
			}
		})
	}
}

// Changes made at once from many stand-ins are each kept: none is lost
// to another that read the group before it.
func TestConcurrentChanges(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open()
			var wg sync.WaitGroup
			for i := range 20 {
				s := imstub.NewServer(imstub.Config{Keys: map[string][]byte{app: []byte(key)}, Admin: admin, Store: st})
				wg.Go(func() { assert.NoError(t, s.Join(app, "G", fmt.Sprint("u", i))) })
			}
			wg.Wait()
			g, err := st.Group(context.Background(), app, "G")
			require.NoError(t, err)
			assert.Len(t, g.Roles, 20)
		})
	}
}

func TestParseFault(t *testing.T) {
	for _, f := range []imstub.Fault{imstub.FaultNone, imstub.FaultError, imstub.FaultHTML, imstub.FaultHTTP, imstub.FaultGarbage, imstub.FaultHang} {
		got, err := imstub.ParseFault(f.String())
		require.NoError(t, err)
		assert.Equal(t, f, got)
	}
	_, err := imstub.ParseFault("slow")
	assert.ErrorContains(t, err, "want one of none, error")
}

// A group's creation makes its owner, named apart, the Owner, and everyone
// else a Member, whatever the order; a creation that names no owner has
// none.
func TestCreatedOwner(t *testing.T) {
	for name, open := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := open()
			s := imstub.NewServer(imstub.Config{Keys: map[string][]byte{app: []byte(key)}, Admin: admin, Store: st})
			ctx := context.Background()
			require.NoError(t, s.Created(ctx, app, "G", "Public", "leckie", "bob", "leckie", "peter"))
			g, err := st.Group(ctx, app, "G")
			require.NoError(t, err)
			assert.Equal(t, map[string]string{"leckie": "Owner", "bob": "Member", "peter": "Member"}, g.Roles)

			require.NoError(t, s.Created(ctx, app, "H", "Public", "", "bob", "peter"))
			g, err = st.Group(ctx, app, "H")
			require.NoError(t, err)
			assert.Equal(t, map[string]string{"bob": "Member", "peter": "Member"}, g.Roles)
		})
	}
}
