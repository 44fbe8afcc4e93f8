package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

// hubcat against a -dev hub: a token from /dev/token, a subscription, and
// the curl'd callback printed as an event frame.
func TestHubcatShowsEvents(t *testing.T) {
	showsCallback(t, options{subs: "group:G1"})
}

func TestHubcatNeedsAnAddress(t *testing.T) {
	err := run(context.Background(), options{}, strings.NewReader(""), &bytes.Buffer{})
	assert.ErrorContains(t, err, "-url or -dev")
}

// hubcat -sse tails a -dev hub's stream of two channels: the subscribed
// frames, then the callback's event, and exits after -n events.
func TestHubcatTailsAStream(t *testing.T) {
	showsCallback(t, options{subs: "group:G1,user:dev", sse: true})
}

// showsCallback runs hubcat with o against a -dev hub until it is
// subscribed to group:G1, posts a group message callback there, and
// checks that hubcat prints it as an event frame and exits after it (-n 1).
func showsCallback(t *testing.T, o options) {
	t.Helper()
	p := hubtest.Start(t, []string{"-dev"})
	o.dev, o.count = "http://"+p.Addr, 1
	var out hubtest.SyncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, o, strings.NewReader(""), &out)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), `"op":"subscribed","channel":"group:G1"`) },
		10*time.Second, 10*time.Millisecond, "subscribed; output so far: %s", out.String())
	resp, err := http.Post(p.URL("/im/callback?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterSendMsg"), "application/json",
		strings.NewReader(`{"GroupId":"G1","MsgSeq":1,"MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"hello"}}]}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, <-done, "hubcat exits after -n events")
	assert.Contains(t, out.String(), `"op":"event","channel":"group:G1"`)
	assert.Contains(t, out.String(), `"Text":"hello"`)
}

// A refused stream is an error that says the status, and -sse needs
// channels.
func TestHubcatStreamRefused(t *testing.T) {
	p := hubtest.Start(t, []string{"-dev"})
	err := run(context.Background(), options{url: p.URL("/sse"), token: "bad", subs: "group:G1", sse: true}, strings.NewReader(""), &bytes.Buffer{})
	assert.ErrorContains(t, err, "401")
	err = run(context.Background(), options{url: p.URL("/sse"), token: "bad", sse: true}, strings.NewReader(""), &bytes.Buffer{})
	assert.ErrorContains(t, err, "-subscribe")
}
