package callback_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
)

// callbackCounts is imhub_callbacks_total as f's registry exports it, by
// "command result".
func callbackCounts(t *testing.T, f *fixture) map[string]float64 {
	t.Helper()
	families, err := f.reg.Gather()
	require.NoError(t, err)
	counts := map[string]float64{}
	for _, fam := range families {
		if fam.GetName() != "imhub_callbacks_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			var cmd, result string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "command":
					cmd = l.GetValue()
				case "result":
					result = l.GetValue()
				}
			}
			counts[cmd+" "+result] = m.GetCounter().GetValue()
		}
	}
	return counts
}

// A callback of a command imhub does not publish is counted under its own
// name when the IM documents it, and as "other" when not: the label's
// values are the catalogue's, never a caller's.
func TestUnpublishedCommandsCountedByName(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ cmd, label string }{
		{"Group.CallbackAfterGroupFull", "Group.CallbackAfterGroupFull"},
		{"Group.CallbackBeforeCreateGroup", "Group.CallbackBeforeCreateGroup"},
		{"Sns.CallbackFriendAdd", "Sns.CallbackFriendAdd"},
		{"Group.CallbackBeforeCreateTopic", "Group.CallbackBeforeCreateTopic"},
		{"Group.CallbackMadeUp", callback.OtherCommand},
		{"Sns.CallbackFriendAdd2", callback.OtherCommand},
		{strings.Repeat("x", 300), callback.OtherCommand},
	} {
		code, body := f.do(t, http.MethodPost, query(openApp, tc.cmd), `{"CallbackCommand":"`+tc.cmd+`","GroupId":"x"}`)
		assert.Equal(t, http.StatusOK, code, tc.cmd)
		assert.Equal(t, ok, body, tc.cmd)
	}
	counts := callbackCounts(t, f)
	for _, label := range []string{"Group.CallbackAfterGroupFull", "Group.CallbackBeforeCreateGroup", "Sns.CallbackFriendAdd", "Group.CallbackBeforeCreateTopic"} {
		assert.Equal(t, 1.0, counts[label+" "+callback.ResultIgnored], "%s is counted by its name", label)
	}
	assert.Equal(t, 3.0, counts[callback.OtherCommand+" "+callback.ResultIgnored], "names the IM does not document are one label")
	assert.Len(t, counts, 5, "no series of a caller's choosing: %v", counts)
}

// The catalogue holds every command imhub publishes, each name once, in
// the IM's Family.Name form.
func TestDocumentedCommands(t *testing.T) {
	for _, c := range callback.Commands {
		assert.Contains(t, callback.Documented, c, "a published command is a documented one")
	}
	seen := map[string]bool{}
	for _, c := range callback.Documented {
		assert.False(t, seen[c], "%s is listed twice", c)
		seen[c] = true
		family, name, ok := strings.Cut(c, ".")
		assert.True(t, ok && family != "" && name != "", "%s is Family.Name", c)
	}
	assert.False(t, slices.Contains(callback.Documented, callback.OtherCommand))
}
