package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/childproc"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/wstest"
)

// recipe returns the arguments the Makefile's target runs its command
// with, after the word that names the command (./$(BIN), ./cmd/hubdemo),
// with the Makefile's variables replaced by vars and its quotes dropped.
func recipe(t *testing.T, target, command string, vars map[string]string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "Makefile"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, target+":") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			break // the target's recipe ended
		}
		_, args, ok := strings.Cut(line, command+" ")
		if !ok {
			continue
		}
		args = regexp.MustCompile(`\$\((\w+)\)`).ReplaceAllStringFunc(args, func(v string) string {
			name := v[2 : len(v)-1]
			val, ok := vars[name]
			require.True(t, ok, "the test knows $(%s) of make %s", name, target)
			return val
		})
		return strings.Fields(strings.ReplaceAll(args, "'", ""))
	}
	t.Fatalf("the Makefile has no target %s running %s", target, command)
	return nil
}

// buildDemo builds this command, for the test to run as make demo does.
func buildDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hubdemo")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/imhub/imhub/cmd/hubdemo").CombinedOutput()
	require.NoError(t, err, "go build cmd/hubdemo:\n%s", out)
	return bin
}

// `make run`, then `make demo`, as a person runs them, with the built
// binaries: a client that signs in with a UserSig of /dev/usersig is let
// in, is told of the groups the demo made it a member of, subscribes to
// them, and when the demo removes it from one is sent the exit and then
// unsubscribed from it, reason "removed".
func TestMakeRunUserSigRemoved(t *testing.T) {
	hub := hubtest.Start(t, recipe(t, "run", "./$(BIN)", map[string]string{"ADDR": "127.0.0.1:0"}))
	hub.WaitReady(200)
	sigURL := hub.URL("/dev/usersig?userid=jared")

	type login struct {
		WS     string
		Groups []string
	}
	signIn := func() login {
		t.Helper()
		code, body := hub.Get("/dev/usersig?userid=jared")
		require.Equal(t, 200, code, "%s: %s", sigURL, body)
		var l login
		require.NoError(t, json.Unmarshal([]byte(body), &l))
		return l
	}
	c := wstest.Dial(t, signIn().WS, "")
	require.Equal(t, "jared", c.ReadOp("connected").User)
	require.Equal(t, "user:jared", c.ReadOp("subscribed").Channel)

	args := recipe(t, "demo", "./cmd/hubdemo", map[string]string{
		"ADDR": hub.Addr, "CALLBACK_TOKEN": "local-cluster-callback-token", "N": "0"})
	demo := exec.Command(buildDemo(t), append(args, "-rate", "50", "-duration", "5m")...)
	childproc.DieWithParent(demo)
	var out hubtest.SyncBuffer
	demo.Stdout, demo.Stderr = &out, &out
	require.NoError(t, demo.Start())
	t.Cleanup(func() {
		_ = demo.Process.Kill()
		_ = demo.Wait()
		if t.Failed() {
			t.Logf("hubdemo:\n%s", out.String())
		}
	})

	var groups []string
	require.Eventually(t, func() bool { groups = signIn().Groups; return len(groups) > 0 }, time.Minute, 20*time.Millisecond,
		"the demo's groups, with jared in them, listed by /dev/usersig")
	subscribed := map[string]bool{}
	for i, g := range groups {
		c.Send(map[string]any{"op": "subscribe", "channel": "group:" + g, "id": i + 1})
	}
	answered := 0
	var removed wstest.Frame
	sawExit := map[string]bool{}
	for removed.Op == "" {
		f := c.Read()
		switch {
		case f.Op == "subscribed" && len(f.ID) > 0:
			subscribed[f.Channel] = true
			answered++
		case f.Op == "error" && len(f.ID) > 0:
			// Removed by the traffic between the listing and the subscribe.
			assert.Equal(t, "forbidden", f.Code, f.Raw)
			answered++
		case f.Op == "event" && subscribed[f.Channel]:
			var ev struct {
				Type    string   `json:"type"`
				Members []string `json:"members"`
			}
			require.NoError(t, json.Unmarshal(f.Event, &ev))
			if ev.Type == "group.member.left" && len(ev.Members) == 1 && ev.Members[0] == "jared" {
				sawExit[f.Channel] = true
			}
		case f.Op == "unsubscribed" && f.Reason != "":
			removed = f
		}
	}
	assert.Positive(t, answered)
	assert.NotEmpty(t, subscribed, "jared subscribed to a group of the demo")
	assert.Equal(t, "removed", removed.Reason, removed.Raw)
	assert.True(t, subscribed[removed.Channel], "unsubscribed from a group it was in: %s", removed.Raw)
	assert.True(t, sawExit[removed.Channel], "the exit that names jared came first")
	group := strings.TrimPrefix(removed.Channel, "group:")
	assert.NotContains(t, signIn().Groups, group, "the stand-in has jared out of %s too", group)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "removed jared from") }, 10*time.Second, 20*time.Millisecond,
		"the demo says it removed jared")
}
