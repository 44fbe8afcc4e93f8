package forward_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/callback/forward"
)

// withCredentials is base (an httptest URL) with a path, and a password
// and a query that stand for the operator's credentials.
func withCredentials(t *testing.T, base string) string {
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.User = url.UserPassword("hub", "pw-s3cret")
	u.Path = "/cb"
	u.RawQuery = "key=q-s3cret"
	return u.String()
}

// A backend that is slow or unreachable fails its attempts with an error
// that names it by scheme, host and path only: the URL of an attempt holds
// a Sign good for any body for a minute, and the operator's credentials.
// Neither is in a log line nor in a dead letter.
func TestErrorsNameTheBackendOnly(t *testing.T) {
	slow := newBackend(t, func(w http.ResponseWriter, r *http.Request, _ int) { <-r.Context().Done() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gone := "http://" + ln.Addr().String()
	ln.Close()
	for name, base := range map[string]string{"slow": slow.URL, "unreachable": gone} {
		t.Run(name, func(t *testing.T) {
			store := forward.NewMemoryStore(10)
			h := newHub(t, fastRetries(forward.Config{
				Targets:        []forward.Target{{App: appA, URL: withCredentials(t, base), Token: token}},
				Timeout:        100 * time.Millisecond,
				AttemptTimeout: 100 * time.Millisecond,
				MaxAge:         500 * time.Millisecond,
			}), store, nil, callback.App{ID: appA, Token: token})
			h.run(t)
			rt := itoa(time.Now().Unix())
			status, body := h.post(t, appA, "Group.CallbackBeforeSendMsg", beforeBody, "RequestTime", rt, "Sign", callback.Sign(token, rt))
			require.Equal(t, 200, status, body)
			status, body = h.post(t, appA, "Group.CallbackAfterSendMsg", groupMsg(1), "RequestTime", rt, "Sign", callback.Sign(token, rt))
			require.Equal(t, 200, status, body)
			eventually(t, 10*time.Second, "dead letter", func() bool { return h.count(t, appA, "dead") == 1 })

			dead := store.ListDead(appA)
			require.Len(t, dead, 1)
			logs := h.log.String()
			for what, text := range map[string]string{"log": logs, "dead letter": dead[0].LastError} {
				for _, secret := range []string{"s3cret", "Sign=", "RequestTime=", "key="} {
					assert.NotContains(t, text, secret, "%s holds %q:\n%s", what, secret, text)
				}
			}
			want := "post to " + forward.BackendName(base+"/cb") + ": "
			assert.Contains(t, dead[0].LastError, want)
			assert.Contains(t, logs, want, "the failed Before* and retries name the backend")
			assert.Contains(t, logs, "forward failed; will retry")
			assert.Contains(t, logs, "the app's backend failed a synchronous callback")
		})
	}
}

func TestBackendName(t *testing.T) {
	assert.Equal(t, "https://backend.example/im", forward.BackendName("https://hub:pw@backend.example/im?key=k#x"))
	assert.Equal(t, "http://10.0.0.2:8080/cb", forward.BackendName("http://10.0.0.2:8080/cb"))
}

// rawPost sends a callback whose request line holds query as it is, raw
// '#' and all, as no HTTP client would send it but a server takes it, and
// returns the answer's status.
func rawPost(t *testing.T, addr, query, body string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	fmt.Fprintf(c, "POST /im/callback?%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		query, addr, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A raw '#' in a callback's query is a character of a value, not the
// start of a fragment: the backend gets every parameter, the signature
// among them, and the value with its '#', for a queued callback and a
// Before* one.
func TestRawHashInQuery(t *testing.T) {
	b := newBackend(t, answerOK)
	h := newHub(t, fastRetries(forward.Config{Targets: []forward.Target{{App: appA, URL: b.URL + "/cb?via=hub"}, {App: appB, URL: b.URL}}}),
		forward.NewMemoryStore(10), nil, callback.App{ID: appA, Token: token}, callback.App{ID: appB})
	h.run(t)
	addr := strings.TrimPrefix(h.srv.URL, "http://")
	rt := itoa(time.Now().Unix())
	for command, body := range map[string]string{"Group.CallbackAfterSendMsg": groupMsg(1), "Group.CallbackBeforeSendMsg": beforeBody} {
		t.Run(command, func(t *testing.T) {
			before := len(b.requests())
			query := "OptPlatform=Web#1%20x&SdkAppid=" + appA + "&CallbackCommand=" + command +
				"&contenttype=json&RequestTime=" + rt + "&Sign=" + callback.Sign(token, rt) + "&ClientIP=127.0.0.1"
			require.Equal(t, 200, rawPost(t, addr, query, body))
			eventually(t, 10*time.Second, "the forward", func() bool { return len(b.requests()) > before })
			got := b.requests()[before]
			q := got.Query
			assert.Equal(t, appA, q.Get("SdkAppid"), got.RawQuery)
			assert.Equal(t, command, q.Get("CallbackCommand"), got.RawQuery)
			assert.Equal(t, "Web#1 x", q.Get("OptPlatform"), got.RawQuery)
			assert.Equal(t, "127.0.0.1", q.Get("ClientIP"), got.RawQuery)
			assert.Equal(t, "hub", q.Get("via"), "the operator's own query comes along")
			assert.NoError(t, callback.VerifySign(token, q.Get("RequestTime"), q.Get("Sign"), time.Now()), got.RawQuery)
			assert.True(t, strings.HasPrefix(got.RawQuery, "via=hub&OptPlatform="), "the operator's query first, then the IM's in its order: %s", got.RawQuery)
		})
	}

	// Without a token, the query goes as it came, '#' escaped.
	before := len(b.requests())
	require.Equal(t, 200, rawPost(t, addr, "SdkAppid="+appB+"&CallbackCommand=Group.CallbackAfterSendMsg&GroupId=@TGS#2J4SZEAEL&contenttype=json", groupMsg(2)))
	eventually(t, 10*time.Second, "the forward", func() bool { return len(b.requests()) > before })
	got := b.requests()[before]
	assert.Equal(t, "SdkAppid="+appB+"&CallbackCommand=Group.CallbackAfterSendMsg&GroupId=%40TGS%232J4SZEAEL&contenttype=json", got.RawQuery)
}
