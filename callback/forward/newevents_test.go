package forward_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/forward"
)

// newerSamples are the IM documents' samples of the commands the hub
// publishes besides the first ones, one of each: message edits
// (https://cloud.tencent.com/document/product/269/129193, .../128224),
// extensions (https://www.tencentcloud.com/document/product/1047/76007,
// .../76006), a group's creation (.../34369), member fields (.../60393),
// owner (.../60396), attributes (.../60394), topics (.../49464, .../49465,
// .../49466) and member presence (.../48734), as the callback package's
// goldens hold them.
var newerSamples = map[string]string{
	callback.CommandGroupModify:        "group_msg_modified",
	callback.CommandC2CModify:          "c2c_msg_modified",
	callback.CommandGroupExtension:     "group_msg_extension_set",
	callback.CommandC2CExtension:       "c2c_msg_extension_set",
	callback.CommandGroupCreate:        "group_created",
	callback.CommandGroupMemberChanged: "group_member_changed",
	callback.CommandGroupOwnerChanged:  "group_owner_changed",
	callback.CommandTopicCreate:        "topic_created",
	callback.CommandTopicDestroyed:     "topic_destroyed",
	callback.CommandTopicInfoChanged:   "topic_info_changed",
	callback.CommandGroupAttrChanged:   "group_attr_changed",
	callback.CommandMemberStateChange:  "group_member_state",
}

// Each newer command the hub publishes reaches the app's backend as the
// IM sent it: the same body, byte for byte, the same query and
// Content-Type, once.
func TestNewerCommandsForwardedUnchanged(t *testing.T) {
	b := newBackend(t, answerOK)
	h := newHub(t, fastRetries(forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL}}}),
		forward.NewMemoryStore(100), nil, callback.App{ID: appA})
	h.run(t)
	sent := map[string]string{}
	for cmd, name := range newerSamples {
		body, err := os.ReadFile(filepath.Join("..", "testdata", "golden", name+".json"))
		require.NoError(t, err)
		var c struct{ CallbackCommand string }
		require.NoError(t, json.Unmarshal(body, &c))
		require.Equal(t, cmd, c.CallbackCommand, name)
		status, answer := h.post(t, appA, cmd, string(body))
		require.Equal(t, 200, status, answer)
		sent[cmd] = string(body)
	}
	eventually(t, 10*time.Second, "delivery", func() bool { return h.count(t, appA, "delivered") == float64(len(sent)) })
	got := b.requests()
	require.Len(t, got, len(sent))
	for _, r := range got {
		cmd := r.Query.Get("CallbackCommand")
		want, ok := sent[cmd]
		require.True(t, ok, "forwarded %q, which was not sent", cmd)
		assert.Equal(t, want, r.Body, cmd)
		assert.Equal(t, "application/json; charset=utf-8", r.ContentType, cmd)
		assert.Equal(t, appA, r.Query.Get("SdkAppid"), cmd)
		assert.Equal(t, "127.0.0.1", r.Query.Get("ClientIP"), cmd)
		assert.Equal(t, "Web", r.Query.Get("OptPlatform"), cmd)
		assert.True(t, strings.Contains(r.RawQuery, "contenttype=json"), cmd)
		delete(sent, cmd)
	}
	assert.Empty(t, sent, "each forwarded once")
}
