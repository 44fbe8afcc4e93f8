// Package local tests deploy/local/cluster.sh: the real stack of Redis,
// three hubs and HAProxy, driven through the load balancer.
package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub/auth"
	"github.com/imhub/imhub/hub/client"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
	"github.com/imhub/imhub/internal/wstest"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

const secret = "cluster-test-secret-cluster-test-secret"

// freePorts finds n consecutive free loopback ports.
func freePorts(t *testing.T, n int) int {
	for try := 0; try < 50; try++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := base+n < 65000
		for p := base; ok && p < base+n; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

type stack struct {
	t   *testing.T
	env []string
	lb  string
	hub []string // hub addresses
	// said is what cluster.sh up printed.
	said string
}

// run runs cluster.sh with args and returns what it printed.
func (s *stack) run(args ...string) string {
	s.t.Helper()
	cmd := exec.Command("./cluster.sh", args...)
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	require.NoError(s.t, err, "cluster.sh %v:\n%s", args, out)
	return string(out)
}

// up starts the stack with cluster.sh; env adds its settings.
func up(t *testing.T, env ...string) *stack {
	for _, c := range []string{"haproxy", "redis-server", "curl"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s is not installed, so the load-balanced stack cannot be tested: run `make test`, which installs it", c)
		}
	}
	base := freePorts(t, 4)
	dir, err := os.MkdirTemp("", "cluster")
	require.NoError(t, err)
	s := &stack{t: t, lb: "127.0.0.1:" + strconv.Itoa(base+3)}
	// Unsigned callbacks, no forwarding and no stand-in of the IM unless
	// env says otherwise (the last of a repeated variable wins).
	s.env = []string{"CLUSTER_DIR=" + dir, "LB_ADDR=" + s.lb, "HUB_PORT_BASE=" + strconv.Itoa(base),
		"HUB_BIN=" + hubtest.Binary(t), "JWT_SECRET=" + secret, "DRAIN=2s", "CALLBACK_TOKEN=", "FORWARD=off", "IM=off"}
	s.env = append(s.env, env...)
	for i := range 3 {
		s.hub = append(s.hub, "127.0.0.1:"+strconv.Itoa(base+i))
	}
	t.Cleanup(func() {
		s.run("down")
		if t.Failed() {
			for _, f := range []string{"haproxy.log", "hub1.log", "hub2.log", "hub3.log"} {
				b, _ := os.ReadFile(dir + "/" + f)
				t.Logf("%s:\n%s", f, b)
			}
		}
		os.RemoveAll(dir)
	})
	s.said = s.run("up")
	return s
}

func connections(t *testing.T, addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "imhub_ws_connections "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

// Clients connect through HAProxy, callbacks go through HAProxy, and each
// replica is drained and restarted in turn while traffic flows: every
// client ends with every event of its channel exactly once, in order, and
// the connections spread over the replicas again.
func TestRollingRestartThroughTheLoadBalancer(t *testing.T) {
	rollingRestart(t, up(t))
}

// The same on a Redis Cluster of three primaries: publications are spread
// over the shards by channel (SPUBLISH on the shard of each channel, no
// cluster-wide PUBLISH).
func TestRollingRestartOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	acked := rollingRestart(t, up(t, "REDIS_URL="+cl.URL()))
	want := map[*redistest.Server]int{}
	shard := func(channel string) *redistest.Server { return cl.Owner("imhub:{1400000000:" + channel + "}") }
	for g, seqs := range acked {
		// Each group message goes to its group's channel and to the app
		// firehose.
		want[shard(fmt.Sprint("group:G", g))] += len(seqs)
		want[shard("app")] += len(seqs)
	}
	require.GreaterOrEqual(t, len(want), 2, "the channels are on more than one shard")
	for _, n := range cl.Nodes {
		// At least: a callback published whose answer was lost in a
		// restart is published and not acknowledged.
		assert.GreaterOrEqual(t, redistest.CommandCalls(t, n, "spublish"), want[n], "SPUBLISHes on %s", n.Addr())
		assert.Zero(t, redistest.CommandCalls(t, n, "publish"), "no cluster-wide PUBLISH on %s", n.Addr())
	}
}

// rollingRestart connects clients through the load balancer of s, posts
// callbacks through it while each replica is drained and restarted in
// turn, checks that every client got every event of its channel once, in
// order, and that the connections spread over the replicas again. It
// returns the sequence numbers acknowledged per group.
func rollingRestart(t *testing.T, s *stack) (acked [][]int64) {
	const clients, groups = 240, 8
	start := time.Now()
	received := make([]*clientTrace, clients)
	subscribers := make([]*client.Client, clients)
	ctx, cancel := context.WithCancel(context.Background())
	var running sync.WaitGroup
	defer func() { cancel(); running.Wait() }()
	for i := range clients {
		r := newClientTrace(start)
		received[i] = r
		c := auth.Claims{Groups: []string{"*"}}
		c.Subject = fmt.Sprint("u", i)
		// The local cluster's hubs run -dev, whose demo API key makes iat
		// required.
		c.IssuedAt = jwt.NewNumericDate(time.Now())
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
		tok, err := auth.Mint([]byte(secret), c)
		require.NoError(t, err)
		cl := client.New(client.Config{
			URLs:       []string{"ws://" + s.lb + "/ws"},
			Token:      func(context.Context) (string, error) { return tok, nil },
			Channels:   []string{fmt.Sprint("group:G", i%groups)},
			OnReset:    func(channel, offset string) { r.note("reset channel=" + channel + " offset=" + offset) },
			OnError:    func(code, msg, channel string) { r.note("error code=" + code + " channel=" + channel + " " + msg) },
			MinBackoff: 50 * time.Millisecond,
			MaxBackoff: time.Second,
			Logger:     r.logger(),
		})
		subscribers[i] = cl
		running.Go(func() {
			_ = cl.Run(ctx, func(e client.Event) {
				var ev callback.Event
				if json.Unmarshal(e.Data, &ev) == nil && len(ev.Messages) > 0 {
					r.event(ev.Messages[0].Seq, e.Offset, cl.Node())
				}
			})
		})
	}
	require.Eventually(t, func() bool {
		total := 0
		for _, h := range s.hub {
			total += max(connections(t, h), 0)
		}
		return total == clients
	}, 30*time.Second, 100*time.Millisecond, "all clients connected through the load balancer")
	connected := time.Since(start)
	// A connection counts before its client has subscribed to its group,
	// and a subscribe without since starts at the channel's latest event:
	// a callback posted before the answer is not the client's to get. So
	// the callbacks begin once every client has been answered (the client
	// then has an offset of its group).
	require.Eventually(t, func() bool {
		for i, cl := range subscribers {
			if _, ok := cl.Offsets()[fmt.Sprint("group:G", i%groups)]; !ok {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "every client subscribed to its group")
	refused := 0
	for _, r := range received {
		if _, ok := r.first("error code="); ok {
			refused++
		}
	}
	t.Logf("every client connected at %.3fs, subscribed to its group at %.3fs; %d were refused a subscribe and asked again",
		connected.Seconds(), time.Since(start).Seconds(), refused)

	// Callbacks through the load balancer, at a steady pace, until the
	// restarts are over.
	var mu sync.Mutex
	acked = make([][]int64, groups)
	unacked := map[int64]int64{} // seq -> group of the callbacks not acknowledged
	stopPub := make(chan struct{})
	var pub sync.WaitGroup
	var timeline []string // when each callback was posted and each restart ran
	mark := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		timeline = append(timeline, fmt.Sprintf("%8.3fs ", time.Since(start).Seconds())+fmt.Sprintf(format, args...))
	}
	pub.Go(func() {
		for seq := int64(1); ; seq++ {
			select {
			case <-stopPub:
				return
			case <-time.After(20 * time.Millisecond):
			}
			g := seq % groups
			posted := time.Since(start)
			ok := postGroupMessage(s.lb, "", fmt.Sprintf("G%d", g), seq)
			mark("callback seq=%d group=G%d posted at %.3fs, acknowledged=%v", seq, g, posted.Seconds(), ok)
			mu.Lock()
			if ok {
				acked[g] = append(acked[g], seq)
			} else {
				unacked[seq] = g
			}
			mu.Unlock()
		}
	})
	time.Sleep(time.Second)
	for n := 1; n <= 3; n++ {
		mark("restart hub%d begins", n)
		s.run("restart", strconv.Itoa(n))
		mark("restart hub%d ends", n)
		time.Sleep(time.Second)
	}
	close(stopPub)
	pub.Wait()

	complete := func() bool {
		for i, r := range received {
			if len(r.missing(acked[i%groups])) > 0 {
				return false
			}
		}
		return true
	}
	if !assert.Eventually(t, complete, 30*time.Second, 50*time.Millisecond, "every client got every acknowledged event of its group") {
		explainMissing(t, acked, received, timeline)
		t.FailNow()
	}
	time.Sleep(200 * time.Millisecond)
	for i, r := range received {
		// Once and in order; besides the acknowledged events, only a
		// callback whose answer was lost may have been published.
		got := r.received()
		assert.True(t, slices.IsSorted(got) && len(slices.Compact(slices.Clone(got))) == len(got),
			"client %d: every event of its group once, in order: %v", i, got)
		for _, seq := range got {
			if !slices.Contains(acked[i%groups], seq) {
				g, posted := unacked[seq]
				assert.True(t, posted && g == int64(i%groups), "client %d got seq %d, which was not posted to its group", i, seq)
				t.Logf("client %d got seq %d, whose callback was not acknowledged", i, seq)
			}
		}
	}
	// Each replica drained sent its clients to the others; leastconn sent
	// the clients of the next one drained to the replica restarted before
	// it, which was empty. The last one restarted has no later drain to
	// refill it.
	total := 0
	for i, h := range s.hub {
		n := connections(t, h)
		total += n
		if i < len(s.hub)-1 {
			assert.Positive(t, n, "hub %d took clients again after its restart", i+1)
		}
	}
	assert.Equal(t, clients, total, "every client is connected again")
	callbacks := 0
	for _, g := range acked {
		callbacks += len(g)
	}
	t.Logf("%d callbacks acknowledged through the load balancer during three rolling restarts", callbacks)
	return acked
}

// With Redis away every hub fails /readyz, yet a callback through the load
// balancer still reaches a hub, which spools it: answered OK in the IM's
// own shape, not HAProxy's "no server available".
func TestCallbacksReachTheSpoolWhenRedisIsDown(t *testing.T) {
	s := up(t)
	dir := strings.TrimPrefix(s.env[0], "CLUSTER_DIR=")
	pid, err := os.ReadFile(dir + "/redis.pid")
	require.NoError(t, err)
	require.NoError(t, exec.Command("kill", "-KILL", strings.TrimSpace(string(pid))).Run())
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + s.hub[0] + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	}, 15*time.Second, 50*time.Millisecond, "hubs fail readiness while Redis is away")
	time.Sleep(time.Second) // HAProxy has marked them down for WebSockets
	resp, err := http.Post("http://"+s.lb+"/im/callback?SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterSendMsg",
		"application/json", strings.NewReader(`{"GroupId":"G","MsgSeq":1,"MsgBody":[]}`))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`, string(b), "spooled by a hub")
}

// appBackend is an app's own backend, as the hubs of the cluster forward to
// it: it checks Sign, denies the Before* callbacks whose Random is a
// multiple of three, refuses the first delivery of every fifth After*
// callback (so that it is retried), and records the After* callbacks it
// delivered.
type appBackend struct {
	token string

	mu      sync.Mutex
	after   map[int64]int // MsgSeq -> deliveries answered OK
	refused map[int64]bool
	badSign int
}

func (b *appBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var body struct {
		MsgSeq int64
		Random int64
	}
	raw, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(raw, &body)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := callback.VerifySign(b.token, q.Get("RequestTime"), q.Get("Sign"), time.Now()); err != nil {
		b.badSign++
		http.Error(w, `{"ActionStatus":"FAIL","ErrorInfo":"bad Sign","ErrorCode":1}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch q.Get("CallbackCommand") {
	case "Group.CallbackBeforeSendMsg":
		if body.Random%3 == 0 {
			fmt.Fprintf(w, `{"ActionStatus":"OK","ErrorInfo":"backend denies %d","ErrorCode":1}`, body.Random)
			return
		}
		fmt.Fprintf(w, `{"ActionStatus":"OK","ErrorInfo":"backend allows %d","ErrorCode":0}`, body.Random)
	case "Group.CallbackAfterSendMsg":
		if body.MsgSeq%5 == 0 && !b.refused[body.MsgSeq] {
			b.refused[body.MsgSeq] = true
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"ActionStatus":"FAIL","ErrorInfo":"try again","ErrorCode":1}`)
			return
		}
		b.after[body.MsgSeq]++
		_, _ = io.WriteString(w, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`)
	default:
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"ActionStatus":"FAIL","ErrorInfo":"unexpected command","ErrorCode":1}`)
	}
}

// post sends one callback of command through the load balancer, signed
// with token when it is not empty, and returns the status and body.
func post(t *testing.T, lb, token, command, body string) (int, string) {
	t.Helper()
	q := url.Values{"SdkAppid": {"1400000000"}, "CallbackCommand": {command}, "contenttype": {"json"}}
	if token != "" {
		rt := strconv.FormatInt(time.Now().Unix(), 10)
		q.Set("RequestTime", rt)
		q.Set("Sign", callback.Sign(token, rt))
	}
	resp, err := http.Post("http://"+lb+"/im/callback?"+q.Encode(), "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// With FORWARD and CALLBACK_TOKEN, the cluster forwards the app's signed
// callbacks to the app's backend: through the load balancer, a Before*
// callback is answered with the backend's own verdict (a denied one comes
// back denied), and every After* callback answered OK reaches the backend
// at least once, signed with the app's token, also when its first delivery
// failed. An unsigned callback is refused, since the app has a token.
func TestForwardingToTheAppsBackend(t *testing.T) {
	const token = "cluster-test-callback-token"
	b := &appBackend{token: token, after: map[int64]int{}, refused: map[int64]bool{}}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	s := up(t, "CALLBACK_TOKEN="+token, "FORWARD="+srv.URL+"/")

	for i := int64(1); i <= 12; i++ {
		status, answer := post(t, s.lb, token, "Group.CallbackBeforeSendMsg",
			fmt.Sprintf(`{"GroupId":"G1","From_Account":"x","Random":%d,"MsgBody":[]}`, i))
		want := fmt.Sprintf(`{"ActionStatus":"OK","ErrorInfo":"backend allows %d","ErrorCode":0}`, i)
		if i%3 == 0 {
			want = fmt.Sprintf(`{"ActionStatus":"OK","ErrorInfo":"backend denies %d","ErrorCode":1}`, i)
		}
		assert.Equal(t, 200, status, "Before* %d", i)
		assert.JSONEq(t, want, answer, "Before* %d: the backend's verdict", i)
	}

	var accepted []int64
	for seq := int64(1); seq <= 30; seq++ {
		status, answer := post(t, s.lb, token, "Group.CallbackAfterSendMsg",
			fmt.Sprintf(`{"GroupId":"G1","From_Account":"x","MsgSeq":%d,"MsgBody":[]}`, seq))
		if assert.Equal(t, 200, status, "After* %d: %s", seq, answer) {
			accepted = append(accepted, seq)
		}
	}
	require.Len(t, accepted, 30)
	missing := func() []int64 {
		b.mu.Lock()
		defer b.mu.Unlock()
		var m []int64
		for _, seq := range accepted {
			if b.after[seq] == 0 {
				m = append(m, seq)
			}
		}
		return m
	}
	require.Eventually(t, func() bool { return len(missing()) == 0 }, 30*time.Second, 100*time.Millisecond,
		"every accepted After* callback reaches the backend")
	b.mu.Lock()
	assert.Zero(t, b.badSign, "every forward is signed with the app's token")
	assert.Len(t, b.refused, 6, "the refused first deliveries were retried")
	b.mu.Unlock()

	status, _ := post(t, s.lb, "", "Group.CallbackAfterSendMsg", `{"GroupId":"G1","MsgSeq":99,"MsgBody":[]}`)
	assert.Equal(t, http.StatusUnauthorized, status, "an unsigned callback, the app having a token")
}

// postGroupMessage posts one group message callback of group with seq to
// the load balancer at lb, signed with token unless it is empty, and
// reports whether it was acknowledged.
func postGroupMessage(lb, token, group string, seq int64) bool {
	q := url.Values{"SdkAppid": {"1400000000"}, "CallbackCommand": {"Group.CallbackAfterSendMsg"}}
	if token != "" {
		rt := strconv.FormatInt(time.Now().Unix(), 10)
		q.Set("RequestTime", rt)
		q.Set("Sign", callback.Sign(token, rt))
	}
	body := fmt.Sprintf(`{"GroupId":%q,"From_Account":"x","MsgSeq":%d,"MsgBody":[]}`, group, seq)
	resp, err := http.Post("http://"+lb+"/im/callback?"+q.Encode(), "application/json", strings.NewReader(body))
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// With IM (make cluster-up's default) every hub follows the IM's
// membership through the stand-in, whose groups are in the cluster's
// Redis: a group made by a callback that one hub took is listed by
// /dev/usersig through the load balancer, a UserSig it minted is good on
// every hub, and an exit that any hub takes removes the user's sessions on
// all of them.
func TestIMLoginAcrossTheCluster(t *testing.T) { imLoginAcross(t, up(t, "IM=on")) }

// The same on a Redis Cluster: the stand-in's groups, the kept answers
// and the group's events are each on their slot.
func TestIMLoginOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	imLoginAcross(t, up(t, "IM=on", "REDIS_URL="+cl.URL()))
	key := "imhub:dev-im:groups:{1400000000}"
	ok, err := cl.Owner(key).Client().HExists(context.Background(), key, "@TGS#2J4SZEAEL").Result()
	require.NoError(t, err)
	assert.True(t, ok, "the stand-in keeps the group on the cluster's shard of %s", key)
}

func imLoginAcross(t *testing.T, s *stack) {
	code, body := post(t, s.lb, "", "Group.CallbackAfterCreateGroup",
		`{"CallbackCommand":"Group.CallbackAfterCreateGroup","GroupId":"@TGS#2J4SZEAEL","Type":"Public","Operator_Account":"leah","Owner_Account":"leah","Name":"n","MemberList":[{"Member_Account":"jared"}]}`)
	require.Equal(t, 200, code, body)
	var login struct {
		Groups []string
		WS     string
	}
	for range 3 { // round robin: each hub's stand-in answers alike
		resp, err := http.Get("http://" + s.lb + "/dev/usersig?userid=jared")
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&login))
		resp.Body.Close()
		assert.Equal(t, []string{"@TGS#2J4SZEAEL"}, login.Groups)
	}
	var conns []*wstest.Conn
	for _, h := range s.hub {
		c := wstest.Dial(t, strings.Replace(login.WS, s.lb, h, 1), "")
		require.Equal(t, "jared", c.ReadOp("connected").User)
		c.ReadOp("subscribed")
		c.Send(map[string]any{"op": "subscribe", "channel": "group:@TGS#2J4SZEAEL", "id": 1})
		f := c.Read()
		require.Equal(t, "subscribed", f.Op, "on %s: %s", h, f.Raw)
		conns = append(conns, c)
	}
	code, body = post(t, s.lb, "", "Group.CallbackAfterMemberExit",
		`{"CallbackCommand":"Group.CallbackAfterMemberExit","GroupId":"@TGS#2J4SZEAEL","Type":"Public","ExitType":"Kicked","Operator_Account":"admin","ExitMemberList":[{"Member_Account":"jared"}]}`)
	require.Equal(t, 200, code, body)
	for i, c := range conns {
		for {
			f := c.Read()
			if f.Op == "unsubscribed" {
				assert.Equal(t, "removed", f.Reason, "on %s: %s", s.hub[i], f.Raw)
				break
			}
		}
	}
}

// printedCurl is the curl command in what cluster.sh printed: the lines
// from the one starting with "curl" to the first that does not end in a
// backslash.
func printedCurl(t *testing.T, said string) string {
	t.Helper()
	var cmd []string
	for _, line := range strings.Split(said, "\n") {
		line = strings.TrimSpace(line)
		if len(cmd) == 0 && !strings.HasPrefix(line, "curl ") {
			continue
		}
		cmd = append(cmd, line)
		if !strings.HasSuffix(line, "\\") {
			break
		}
	}
	require.NotEmpty(t, cmd, "no curl in:\n%s", said)
	return strings.Join(cmd, "\n")
}

// cluster.sh up ends with a curl of a sample group message callback,
// signed with the app's callback token at the time it was printed; run as
// printed, through the load balancer, it is answered OK and its event
// reaches a client of the group on a hub. `cluster.sh sample` prints a
// fresh one; for an app without a token it prints one unsigned, and says
// so.
func TestPrintedSampleCallback(t *testing.T) {
	const token = "cluster-test-callback-token"
	s := up(t, "CALLBACK_TOKEN="+token)
	curl := printedCurl(t, s.said)
	assert.Contains(t, s.said, "60s", "the note says how long the signature holds")
	u, err := url.Parse(strings.Trim(strings.Fields(curl)[4], "'"))
	require.NoError(t, err)
	q := u.Query()
	assert.Equal(t, callback.Sign(token, q.Get("RequestTime")), q.Get("Sign"), "Sign is of the token and RequestTime")
	rt, err := strconv.ParseInt(q.Get("RequestTime"), 10, 64)
	require.NoError(t, err)
	assert.InDelta(t, time.Now().Unix(), rt, 60, "RequestTime is when it was printed")

	c := auth.Claims{Groups: []string{"*"}}
	c.Subject = "watcher"
	c.IssuedAt = jwt.NewNumericDate(time.Now())
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	tok, err := auth.Mint([]byte(secret), c)
	require.NoError(t, err)
	ws := wstest.Dial(t, "ws://"+s.hub[1]+"/ws", tok)
	ws.ReadOp("connected")
	ws.ReadOp("subscribed") // to user:watcher
	ws.Send(map[string]any{"op": "subscribe", "channel": "group:@TGS#2J4SZEAEL", "id": 1})
	require.Equal(t, "group:@TGS#2J4SZEAEL", ws.ReadOp("subscribed").Channel)

	out, err := exec.Command("bash", "-c", curl+" -w '\\n%{http_code}'").CombinedOutput()
	require.NoError(t, err, "%s:\n%s", curl, out)
	assert.Equal(t, `{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`+"\n200", string(out))
	var ev callback.Event
	require.NoError(t, json.Unmarshal(ws.ReadOp("event").Event, &ev))
	assert.Equal(t, "group.message.sent", ev.Type)

	again := printedCurl(t, s.run("sample"))
	assert.Contains(t, again, "Sign=", "sample signs anew")

	s.env = append(s.env, "CALLBACK_TOKEN=")
	said := s.run("sample")
	assert.Contains(t, said, "no callback token")
	assert.NotContains(t, printedCurl(t, said), "Sign=")
}
