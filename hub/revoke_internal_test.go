package hub

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The index of sessions by user keeps every session still there, whatever
// the order they leave in, and drops a user with none.
func TestUserIndex(t *testing.T) {
	h := &Hub{users: map[userKey][]*Session{}}
	k := userKey{"app", "u"}
	var all []*Session
	for range 5 {
		s := &Session{}
		h.addUserLocked(s, k)
		all = append(all, s)
	}
	other := &Session{}
	h.addUserLocked(other, userKey{"app", "v"})
	for _, gone := range []int{1, 4, 0} {
		h.removeUserLocked(all[gone], k)
		h.removeUserLocked(all[gone], k) // twice: no harm
	}
	assert.ElementsMatch(t, []*Session{all[2], all[3]}, h.users[k])
	for i, s := range h.users[k] {
		assert.Equal(t, i, s.userAt)
	}
	h.removeUserLocked(all[3], k)
	h.removeUserLocked(all[2], k)
	assert.NotContains(t, h.users, k)
	assert.Equal(t, []*Session{other}, h.users[userKey{"app", "v"}])
}
