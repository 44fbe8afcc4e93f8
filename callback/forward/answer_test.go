package forward_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/forward"
)

const beforeBody = `{"CallbackCommand":"Group.CallbackBeforeSendMsg","GroupId":"@TGS#1","From_Account":"jared","MsgBody":[]}`

// TestAnswerFailures checks that a Before* callback is answered within the
// timeout whatever the backend does, with the backend's answer when it
// gives one and -forward-fail's when it fails.
func TestAnswerFailures(t *testing.T) {
	const timeout = 300 * time.Millisecond
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	// target is where a redirect points; following it would answer OK.
	target := newBackend(t, answerOK)
	down := newBackend(t, answerOK)
	down.Close()

	fail := `{"ActionStatus":"FAIL","ErrorInfo":"muted","ErrorCode":1}`
	okAnswer := `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`
	denyAnswer := `{"ActionStatus":"FAIL","ErrorInfo":"the app's backend did not answer","ErrorCode":1}`
	cases := []struct {
		name    string
		answer  func(w http.ResponseWriter, r *http.Request, n int) // nil: the backend is down
		status  int
		body    string // "" = the -forward-fail answer
		answers bool   // the backend's answer is passed on
	}{
		{name: "down"},
		{name: "slower than the timeout", answer: func(w http.ResponseWriter, r *http.Request, _ int) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}},
		{name: "500", answer: func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.WriteHeader(500)
			io.WriteString(w, okAnswer)
		}},
		{name: "not JSON", answer: func(w http.ResponseWriter, _ *http.Request, _ int) { io.WriteString(w, "<html>ok</html>") }},
		{name: "empty body", answer: func(w http.ResponseWriter, _ *http.Request, _ int) {}},
		{name: "closed mid-answer", answer: func(w http.ResponseWriter, _ *http.Request, _ int) {
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ActionStatus\":")
			buf.Flush()
			conn.Close()
		}},
		{name: "redirect", answer: func(w http.ResponseWriter, r *http.Request, _ int) {
			http.Redirect(w, r, target.URL, http.StatusFound)
		}},
		{name: "larger than the answer limit", answer: func(w http.ResponseWriter, _ *http.Request, _ int) {
			io.WriteString(w, `{"ActionStatus":"OK","pad":"`+string(make([]byte, 70<<10))+`"}`)
		}},
		{name: "FAIL is the backend's verdict", answers: true, status: 200, body: fail, answer: func(w http.ResponseWriter, _ *http.Request, _ int) {
			io.WriteString(w, fail)
		}},
		{name: "4xx is the backend's verdict", answers: true, status: 403, body: fail, answer: func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.WriteHeader(403)
			io.WriteString(w, fail)
		}},
		{name: "OK", answers: true, status: 200, body: `{"ActionStatus":"OK","ErrorCode":0,"MsgBody":[]}`, answer: func(w http.ResponseWriter, _ *http.Request, _ int) {
			io.WriteString(w, `{"ActionStatus":"OK","ErrorCode":0,"MsgBody":[]}`)
		}},
	}
	for _, deny := range []bool{false, true} {
		for _, c := range cases {
			name := c.name + map[bool]string{false: "/allow", true: "/deny"}[deny]
			t.Run(name, func(t *testing.T) {
				url := down.URL
				if c.answer != nil {
					url = newBackend(t, c.answer).URL
				}
				h := newHub(t, forward.Config{Targets: []forward.Target{{App: appA, URL: url}}, Timeout: timeout, Deny: deny},
					forward.NewMemoryStore(10), nil, callback.App{ID: appA})
				start := time.Now()
				status, body := h.post(t, appA, "Group.CallbackBeforeSendMsg", beforeBody)
				took := time.Since(start)
				// A generous bound: what matters is that the slow backend
				// (held for the whole test) does not hold the answer.
				assert.Less(t, took, timeout+2*time.Second, "the IM waits 2s at most")
				switch {
				case c.answers:
					assert.Equal(t, c.status, status)
					assert.Equal(t, c.body, body)
					assert.Equal(t, 1.0, h.count(t, appA, "answered"))
				case deny:
					assert.Equal(t, 200, status)
					assert.JSONEq(t, denyAnswer, body)
					assert.Equal(t, 1.0, h.count(t, appA, "fallback"))
				default:
					assert.Equal(t, 200, status)
					assert.JSONEq(t, okAnswer, body)
					assert.Equal(t, 1.0, h.count(t, appA, "fallback"))
				}
			})
		}
	}
	assert.Empty(t, target.requests(), "a redirect must not be followed")
}

// TestAnswerAfterChecks checks that a Before* callback is proxied only when
// it passes the §1 checks, with the same body, Content-Type and query, and
// that it is not queued.
func TestAnswerAfterChecks(t *testing.T) {
	b := newBackend(t, answerOK)
	store := forward.NewMemoryStore(10)
	h := newHub(t, forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL + "/im?x=1"}}},
		store, nil, callback.App{ID: appA}, callback.App{ID: appB})

	status, _ := h.post(t, appA, "Group.CallbackBeforeSendMsg", `[1]`)
	assert.Equal(t, 400, status)
	status, _ = h.post(t, appA, "Group.CallbackBeforeSendMsg", `{"CallbackCommand":"Group.CallbackBeforeCreateGroup"}`)
	assert.Equal(t, 400, status)
	assert.Empty(t, b.requests(), "a rejected callback is not forwarded")

	status, body := h.post(t, appA, "Group.CallbackBeforeSendMsg", beforeBody)
	require.Equal(t, 200, status)
	assert.JSONEq(t, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`, body)
	got := b.requests()
	require.Len(t, got, 1)
	assert.Equal(t, beforeBody, got[0].Body)
	assert.Equal(t, "application/json; charset=utf-8", got[0].ContentType)
	assert.Equal(t, "1", got[0].Query.Get("x"), "the URL's own query is kept")
	assert.Equal(t, "Group.CallbackBeforeSendMsg", got[0].Query.Get("CallbackCommand"))
	assert.Equal(t, "127.0.0.1", got[0].Query.Get("ClientIP"))
	n, _ := store.Backlog(t.Context(), appA)
	assert.Zero(t, n, "a Before* callback is not queued")

	// An app without a backend: answered by the hub, not proxied.
	status, _ = h.post(t, appB, "Group.CallbackBeforeSendMsg", beforeBody)
	assert.Equal(t, 200, status)
	assert.Len(t, b.requests(), 1)
}
