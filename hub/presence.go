package hub

import (
	"context"
	"encoding/json"

	"github.com/imhub/imhub/internal/textclip"
)

// Presence records this node's sessions and subscriptions, and answers who
// is connected to a channel across every node (PROTOCOL §3, the presence
// op). The recording methods are on the path of every connect and
// subscribe: they must not block.
type Presence interface {
	// Connect and Disconnect count the sessions of app's user.
	Connect(app, user string)
	Disconnect(app, user string)
	// Join and Leave count the sessions of app's user subscribed to
	// channel.
	Join(app, channel, user string)
	Leave(app, channel, user string)
	// Users returns, for every user with a session subscribed to app's
	// channel on any node, how many such sessions there are.
	Users(ctx context.Context, app, channel string) (map[string]int, error)
}

// nopPresence is the Presence of a hub configured without one: it records
// nothing and knows nobody.
type nopPresence struct{}

func (nopPresence) Connect(string, string)       {}
func (nopPresence) Disconnect(string, string)    {}
func (nopPresence) Join(string, string, string)  {}
func (nopPresence) Leave(string, string, string) {}
func (nopPresence) Users(context.Context, string, string) (map[string]int, error) {
	return map[string]int{}, nil
}

// presenceFrame answers a presence op. Users is always present, {} for a
// channel nobody is subscribed to.
type presenceFrame struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	Users   map[string]int  `json:"users"`
	ID      json.RawMessage `json:"id,omitempty"`
}

// presence answers who is connected to a channel the session may
// subscribe to; other channels get the error a subscribe would.
func (s *Session) presence(ctx context.Context, f clientFrame) {
	if f.Channel == "" {
		s.fail(f.ID, "", CodeBadRequest, "channel is required")
		return
	}
	s.mu.Lock()
	code, msg := authorize(s.id, f.Channel)
	s.mu.Unlock()
	if code != "" {
		s.fail(f.ID, f.Channel, code, msg)
		return
	}
	bctx, cancel := context.WithTimeout(ctx, s.hub.cfg.BrokerTimeout)
	defer cancel()
	users, err := s.hub.cfg.Presence.Users(bctx, s.app, f.Channel)
	if err != nil {
		s.hub.log.Warn("presence failed", "app", s.app, "channel", textclip.Cut(f.Channel, maxEcho), "err", err)
		s.fail(f.ID, f.Channel, CodeUnavailable, "presence could not be read now, try again")
		return
	}
	b, err := json.Marshal(presenceFrame{Op: "presence", Channel: f.Channel, Users: users, ID: f.ID})
	if err != nil {
		s.fail(nil, f.Channel, CodeBadRequest, "presence: "+err.Error())
		return
	}
	s.send(b)
}
