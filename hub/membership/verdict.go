package membership

import (
	"time"

	"github.com/imhub/imhub/hub/imapi"
)

// Verdict is what Check says of a user and a group.
type Verdict int

// The verdicts. The zero Verdict is Unavailable, so that a verdict left
// unset never grants.
const (
	// Unavailable: the IM could not be asked (or what it answered could
	// not be kept) and no answer kept serves: the user must not be let in,
	// and may try again.
	Unavailable Verdict = iota
	// Member: the IM says the user is the group's owner, an admin or a
	// member, or the group is an audio-video group, which admits every
	// user of the app.
	Member
	// NotMember: the IM says the user is not in the group, or the group
	// does not exist or was disbanded.
	NotMember
)

func (v Verdict) String() string {
	switch v {
	case Member:
		return "member"
	case NotMember:
		return "not member"
	}
	return "unavailable"
}

// judge is the verdict on user by what k keeps that holds at now: the
// user's own entry first (a callback about the user, or the IM's answer),
// then the group's facts (disbanded: no one; audio-video: everyone). It
// reports false when nothing kept holds.
//
// A user who left an audio-video group is refused while the exit is kept
// (NonMemberTTL), then admitted again with everyone else.
func judge(k kept, user string, now time.Time) (Verdict, bool) {
	if e, ok := k.entry(user); ok && now.Before(e.expires) {
		return verdictOf(e.role), true
	}
	if now.Before(k.gone) {
		return NotMember, true
	}
	if now.Before(k.av) {
		return Member, true
	}
	return Unavailable, false
}

func verdictOf(r imapi.Role) Verdict {
	if r.Member() {
		return Member
	}
	return NotMember
}
