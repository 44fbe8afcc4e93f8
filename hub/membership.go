package hub

import (
	"context"
	"strings"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/membership"
	"github.com/imhub/imhub/internal/textclip"
)

// Membership is the IM's own group membership, for the apps whose groups
// follow it (docs/protocol.md#channels): a session that is not an admin's
// may subscribe to such an app's group:<G>, and see its presence, only
// while Check says it is a member. *membership.View is the one the hub
// uses.
type Membership interface {
	// Governs reports whether app's groups follow the IM's membership.
	Governs(app string) bool
	// Check says whether user is a member of app's group now. It may ask
	// the IM, and so take as long as ctx lets it.
	Check(ctx context.Context, app, group, user string) (membership.Verdict, error)
	// Saw is told, on the fan-out's path, of each live event of a
	// governed group that changes its members, as it reaches the node: it
	// applies it to what Check answers on this node, in no time.
	Saw(app string, c callback.MemberChange)
}

// governs reports whether app's groups follow the IM's membership.
func (h *Hub) governs(app string) bool {
	return h.cfg.Membership != nil && h.cfg.Membership.Governs(app)
}

// memberGroup is the group whose IM membership id must have for channel,
// if it must: a group of an app the IM's membership governs, asked for by
// anyone but an admin.
func (h *Hub) memberGroup(id *auth.Identity, channel string) (string, bool) {
	group, ok := strings.CutPrefix(channel, "group:")
	if !ok || group == "" || id.Admin || len(channel) > maxChannelLen || !h.governs(id.App) {
		return "", false
	}
	return group, true
}

// asksIM reports whether frame f, of a session that holds id, may have to
// wait for the IM: it is then carried out off the reader (opqueue.go).
func (h *Hub) asksIM(id *auth.Identity, f *clientFrame) bool {
	if f.Op != "subscribe" && f.Op != "presence" {
		return false
	}
	_, ok := h.memberGroup(id, f.Channel)
	return ok
}

// admitMember asks whether the session's user is a member of group and
// says, if not, the error to answer with: forbidden when the IM says it
// is not, unavailable when the IM could not be asked and nothing kept
// answers (the client may try again).
func (s *Session) admitMember(ctx context.Context, group string) (code, msg string) {
	return s.hub.admitMember(ctx, s.app, s.user, group)
}

// admitMember asks whether app's user is a member of group, and says, if
// not, why: forbidden or unavailable, as Session.admitMember.
func (h *Hub) admitMember(ctx context.Context, app, user, group string) (code, msg string) {
	v, err := h.cfg.Membership.Check(ctx, app, group, user)
	switch v {
	case membership.Member:
		return "", ""
	case membership.NotMember:
		return CodeForbidden, "the IM says you are not a member of group " + textclip.Cut(group, maxEcho)
	}
	h.log.Debug("membership could not be checked", "app", app, "group", textclip.Cut(group, maxEcho), "err", err)
	return CodeUnavailable, "the IM could not be asked about group " + textclip.Cut(group, maxEcho) + " now; subscribe again"
}

// memberChange reads what a publication of channel k changes of its
// group's members: only for a group of a governed app, and only an event
// of that group.
func (h *Hub) memberChange(k chanKey, data []byte) (callback.MemberChange, bool) {
	group, ok := strings.CutPrefix(k.channel, "group:")
	if !ok || !h.governs(k.app) {
		return callback.MemberChange{}, false
	}
	c, ok := callback.MemberChangeOf(data)
	if !ok || c.Group != group {
		return callback.MemberChange{}, false
	}
	return c, true
}
