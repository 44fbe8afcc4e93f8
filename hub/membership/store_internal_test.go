package membership

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/internal/redistest"
)

// The memory store keeps at most its bound of records, dropping those that
// lapse soonest first.
func TestMemoryStoreBound(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s := newMemoryStore(time.Minute, 4)
	g1, g2 := groupID{"1", "g1"}, groupID{"1", "g2"}
	must(t, s.learn(ctx, g1, entry{role: imapi.RoleMember, expires: now.Add(10 * time.Minute)}, true, false, []string{"x1", "x2"}, now))
	must(t, s.learn(ctx, g2, entry{role: imapi.RoleNotMember, expires: now.Add(time.Minute)}, false, false, []string{"y1", "y2"}, now))
	if n := s.entries + len(s.groups); n > 4 {
		t.Fatalf("%d records kept, bound 4", n)
	}
	k, err := s.read(ctx, g1, []string{"x1", "x2"}, now)
	must(t, err)
	if len(k.users) != 2 {
		t.Fatalf("the later-lapsing entries were dropped: %v", k.users)
	}
	if s.dropped == 0 {
		t.Fatal("nothing counted as dropped early")
	}
}

// An entry dropped early may have been an exit: an IM answer claimed
// before the drop is not kept for a user the group then holds nothing
// about, nor, once a whole group was dropped, for a group made anew.
func TestMemoryStoreDropKeepsExitsWinning(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s := newMemoryStore(time.Minute, 5)
	g := groupID{"1", "g"}
	users := []string{"a", "b", "c", "d", "e", "f"}
	cl, err := s.claim(ctx, g, users, true, now, now.Add(time.Second), "t")
	must(t, err)
	must(t, s.learn(ctx, g, entry{role: imapi.RoleNotMember, expires: now.Add(time.Minute)}, false, false, users, now))
	ans := answer{users: map[string]entry{}}
	for _, u := range users {
		ans.users[u] = entry{role: imapi.RoleMember, expires: now.Add(10 * time.Minute)}
	}
	k, err := s.record(ctx, g, cl, ans, users, now)
	must(t, err)
	for _, u := range users {
		if e, ok := k.entry(u); ok && e.role.Member() {
			t.Fatalf("%s: the late answer was kept over an exit", u)
		}
	}

	// A group dropped whole: a claim from before takes nothing, though the
	// group is made anew.
	s = newMemoryStore(time.Minute, 3)
	g2 := groupID{"1", "other"}
	cl, err = s.claim(ctx, g2, []string{"z"}, true, now, now.Add(time.Second), "t2")
	must(t, err)
	must(t, s.learn(ctx, groupID{"1", "filler"}, entry{role: imapi.RoleMember, expires: now.Add(time.Hour)}, true, false, []string{"u1", "u2"}, now))
	if _, ok := s.groups[g2]; ok {
		t.Fatal("the group was not dropped: the test proves nothing")
	}
	k, err = s.record(ctx, g2, cl, answer{users: map[string]entry{"z": {role: imapi.RoleMember, expires: now.Add(2 * time.Hour)}}}, []string{"z"}, now)
	must(t, err)
	if _, ok := k.entry("z"); ok {
		t.Fatal("a claim from before the group was dropped was kept")
	}
}

// TestMemoryPerEntry measures what DefaultMaxKept costs.
func TestMemoryPerEntry(t *testing.T) {
	const groups, perGroup = 1000, 100
	now := time.Now()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := newMemoryStore(time.Minute, groups*perGroup*2)
	for g := range groups {
		us := make([]string, perGroup)
		for i := range us {
			us[i] = fmt.Sprintf("user-%06d-%03d", g, i)
		}
		must(t, s.learn(context.Background(), groupID{"1400000000", fmt.Sprintf("@TGS#%08d", g)},
			entry{role: imapi.RoleMember, expires: now.Add(time.Duration(g) * time.Millisecond)}, true, false, us, now))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(s.entries+len(s.groups))
	t.Logf("%.0f bytes a record; DefaultMaxKept (%d) about %.0f MB", per, DefaultMaxKept, per*DefaultMaxKept/1e6)
	runtime.KeepAlive(s)
	if per > 400 {
		t.Fatalf("%.0f bytes a record: DefaultMaxKept's documented cost is out of date", per)
	}
}

// Redis cannot expire a field: the lapsed entries of a group's hash are
// swept as it grows, so a group asked about for long does not grow
// without end.
func TestRedisStoreSweeps(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := &redisStore{client: rdb, prefix: "imhub", grace: time.Minute}
	g := groupID{"1", "g"}
	now := time.Now()
	for round := range 20 {
		us := make([]string, 100)
		for i := range us {
			us[i] = fmt.Sprint("r", round, "u", i)
		}
		must(t, s.learn(ctx, g, entry{role: imapi.RoleNotMember, expires: now.Add(time.Minute)}, false, false, us, now))
		now = now.Add(3 * time.Minute) // every earlier round has lapsed
	}
	n, err := rdb.HLen(ctx, s.hashKey(g)).Result()
	must(t, err)
	if n > 400 {
		t.Fatalf("%d fields after 20 rounds of 100 users, each lapsed before the next", n)
	}
	ttl, err := rdb.PTTL(ctx, s.hashKey(g)).Result()
	must(t, err)
	if ttl <= 0 {
		t.Fatalf("the hash has no expiry (%v)", ttl)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
