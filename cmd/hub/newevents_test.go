package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// newerSample is one IM document's sample of a newer command and where
// its event goes, besides "app" (docs/protocol.md#events).
type newerSample struct {
	golden, typ string
	channels    []string
	// eventTime is set on a sample whose page shows no EventTime: the IM
	// names each occurrence by it, and without it a repeat cannot be told
	// from a second change of the same kind.
	eventTime bool
}

// The samples are the callback package's goldens, from the pages cited
// there (callback/parse_test.go's goldenSources).
var newerSamples = []newerSample{
	{"group_msg_modified", "group.message.modified", []string{"group:group-test-2"}, false},
	{"c2c_msg_modified", "c2c.message.modified", []string{"user:jared", "user:Jonh"}, false},
	{"group_msg_extension_set", "group.message.extension", []string{"group:test"}, false},
	{"c2c_msg_extension_set", "c2c.message.extension", []string{"user:user1", "user:user2"}, false},
	{"group_created", "group.created", []string{"group:@TGS#2J4SZEAEL", "user:leckie", "user:bob", "user:peter"}, false},
	{"group_member_changed", "group.member.changed", []string{"group:@TGS#xxxx", "user:123456"}, false},
	{"group_owner_changed", "group.owner.changed", []string{"group:@TGS#2TTV7VSII"}, false},
	{"topic_created", "group.topic.created", []string{"group:@TGS#2J4SZEAEL"}, false},
	{"topic_destroyed", "group.topic.destroyed", []string{"group:@TGS#_@TGS#cQVLVHIM62CJ"}, false},
	{"topic_info_changed", "group.topic.changed", []string{"group:@TGS#2J4SZEAEL"}, true},
	{"group_attr_changed", "group.attrs.changed", []string{"group:@TGS#2J4SZEAEL"}, false},
	{"group_member_state", "group.member.status", []string{"group:@TGS#2J4SZEAEL"}, true},
}

// The built hub publishes each newer command's documented sample as one
// event of its type on each of its channels and on "app", and its repeat
// not again.
func TestBinaryNewerCommands(t *testing.T) {
	p := hubtest.Start(t, []string{"-apps", "100", "-jwt-secret", clusterSecret})
	p.WaitReady(200)
	channels := map[string]bool{"app": true}
	for _, s := range newerSamples {
		for _, ch := range s.channels {
			channels[ch] = true
		}
	}
	c := wstest.Dial(t, wsURL(p), mint(t, "100", "ops", true))
	require.Equal(t, "connected", c.Read().Op)
	require.Equal(t, "subscribed", c.Read().Op)
	var names []string
	for ch := range channels {
		names = append(names, ch)
	}
	sort.Strings(names)
	for _, ch := range names {
		c.Send(map[string]any{"op": "subscribe", "channel": ch})
		f := c.Read()
		require.Equal(t, "subscribed", f.Op, "%s: %s", ch, f.Raw)
	}

	want := map[string]int{} // "channel type" -> events
	for _, s := range newerSamples {
		body, err := os.ReadFile(filepath.Join("..", "..", "callback", "testdata", "golden", s.golden+".json"))
		require.NoError(t, err)
		var cmd struct{ CallbackCommand string }
		require.NoError(t, json.Unmarshal(body, &cmd))
		if s.eventTime {
			body = []byte(strings.Replace(string(body), "{", `{"EventTime":1765000000000,`, 1))
		}
		for range 2 {
			require.Equal(t, 200, postCommand(t, p, "100", cmd.CallbackCommand, string(body)), s.golden)
		}
		for _, ch := range append([]string{"app"}, s.channels...) {
			want[ch+" "+s.typ]++
		}
	}
	got := map[string]int{}
	all := func() bool {
		for k, n := range want {
			if got[k] < n {
				return false
			}
		}
		return true
	}
	// read counts the events until the last one (a message sent), or
	// until done says so.
	read := func(done func() bool) {
		t.Helper()
		for {
			f, err := c.TryRead(30 * time.Second)
			require.NoError(t, err, "got %v", got)
			if f.Op != "event" {
				continue
			}
			var ev struct{ Type string }
			require.NoError(t, json.Unmarshal(f.Event, &ev))
			if ev.Type == "group.message.sent" {
				return
			}
			got[f.Channel+" "+ev.Type]++
			if done != nil && done() {
				return
			}
		}
	}
	read(all)
	// A last event on "app": once it is there, every repeat would have
	// been too.
	require.Equal(t, 200, postCommand(t, p, "100", "Group.CallbackAfterSendMsg", groupMsg("last", 1)))
	read(nil)
	assert.Equal(t, want, got)
}
