package hub

import (
	"strings"

	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/internal/textclip"
)

// maxChannelLen bounds a channel name: IM ids are far shorter.
const maxChannelLen = 300

// authorize says whether id may subscribe to channel, as far as the
// credential goes, and if not, the error code and message to answer with.
// governed says the IM's membership governs the app's groups: a UserSig
// grants groups only then, and the IM must then say a non-admin is a
// member too (see Session.admitMember).
func authorize(id *auth.Identity, channel string, governed bool) (code, msg string) {
	if len(channel) > maxChannelLen {
		return CodeUnknownChannel, "channel name is too long"
	}
	switch kind, name, _ := strings.Cut(channel, ":"); {
	case channel == "app":
		if id.Admin {
			return "", ""
		}
		return CodeForbidden, "the app channel needs an admin token"
	case kind == "group" && name != "" && id.UserSig && !governed:
		// A UserSig names no groups: only the IM's membership grants
		// them, and it does not govern this app's.
		return CodeForbidden, "a usersig grants only the groups the IM says the user is in, which this hub does not check"
	case kind == "group" && name != "":
		if id.MayGroup(name) {
			return "", ""
		}
		return CodeForbidden, "the token does not grant group " + textclip.Cut(name, maxEcho)
	case kind == "user" && name != "":
		if name == id.User || id.Admin {
			return "", ""
		}
		return CodeForbidden, "only an admin token may subscribe to another user"
	default:
		return CodeUnknownChannel, `channels are "app", "group:<GroupId>" and "user:<UserID>"`
	}
}
