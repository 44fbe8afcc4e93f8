package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

// The backend knows a callback by its MsgSeq: it counts what it received,
// repeats apart, and what the hub accepted that it has not received, in
// whichever order the forward and the acceptance come.
func TestBackendCounts(t *testing.T) {
	be, err := startBackend()
	require.NoError(t, err)
	defer be.close()
	post := func(cmd, body string) {
		t.Helper()
		resp, err := http.Post(be.url+"?CallbackCommand="+cmd, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		var v map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&v))
		resp.Body.Close()
		assert.Equal(t, "OK", v["ActionStatus"])
	}
	group := func(seq int) string { return fmt.Sprintf(`{"GroupId":"G1","MsgSeq":%d}`, seq) }

	be.expect(1)
	be.expect(2)
	be.expect(3)
	post("Group.CallbackAfterSendMsg", group(1))
	post("Group.CallbackAfterSendMsg", group(1)) // at least once: a repeat
	post("Group.CallbackAfterSendMsg", group(4)) // forwarded before it is known accepted
	be.expect(4)
	be.expect(4) // told twice, wanted once
	post("Group.CallbackBeforeSendMsg", group(2))
	post("Group.CallbackAfterSendMsg", `{"GroupId":"G1"}`)
	assert.Equal(t, counts{accepted: 4, missing: 2, distinct: 2, repeats: 1}, be.counts(), "2 and 3 missing: a Before* is not a forward")
	_, err = be.waitDrained(context.Background(), 50*time.Millisecond)
	assert.Error(t, err, "not drained while any is missing")
	assert.EqualValues(t, 5, be.requests.Load())
	assert.EqualValues(t, 1, be.before.Load())
	assert.EqualValues(t, 1, be.unknown.Load())

	post("C2C.CallbackAfterSendMsg", `{"To_Account":"u1","MsgSeq":2}`)
	post("Group.CallbackAfterSendMsg", group(3))
	assert.Equal(t, counts{accepted: 4, missing: 0, distinct: 4, repeats: 1}, be.counts())
	_, err = be.waitDrained(context.Background(), time.Second)
	assert.NoError(t, err)
}

func TestForwardTable(t *testing.T) {
	r := ForwardReport{
		Off: &Result{Broker: "redis", Published: 95500, CallbacksPerS: 4775, HubCPU: 30},
		On: &Result{Broker: "redis", Published: 66520, CallbacksPerS: 3326, HubCPU: 33.26,
			ForwardAccepted: 66520, ForwardReceived: 66520, ForwardsPerS: 3300, ForwardsPerSPublishing: 1663, ForwardDrainSeconds: 0.16},
		Probe: Probe{N: 1000, DirectP50ms: 0.1, DirectP99ms: 0.3, HubP50ms: 0.46, HubP99ms: 1.08, AddedP50ms: 0.36, AddedP99ms: 0.78},
	}
	var b bytes.Buffer
	r.table(&b)
	want := `ingest (redis broker)                    forwarding off       forwarding on    on / off
callbacks/s accepted                     4775                 3326             0.70
callbacks refused                        0                    0
hub CPU-s per 10,000 callbacks           3.14                 5.00             1.59
forwards delivered/s while accepting     —                    1663             0.50 of accepted/s
forwards delivered/s, to the last        —                    3300             0.99 of accepted/s
backend received / accepted              —                    66520 / 66520
backlog drained after the last callback  —                    0.16 s

Before* (1000, one at a time)            straight to backend  through the hub  added
p50                                      0.10 ms              0.46 ms          +0.36 ms
p99                                      0.30 ms              1.08 ms          +0.78 ms
`
	assert.Equal(t, want, b.String())
}

func TestProbeQuantiles(t *testing.T) {
	var hub, direct []time.Duration
	for i := 100; i >= 1; i-- { // out of order on purpose
		hub = append(hub, time.Duration(i)*time.Millisecond)
		direct = append(direct, time.Duration(i)*100*time.Microsecond)
	}
	p := newProbe(hub, direct)
	assert.Equal(t, 100, p.N)
	assert.InDelta(t, 50, p.HubP50ms, 1e-9)
	assert.InDelta(t, 99, p.HubP99ms, 1e-9)
	assert.InDelta(t, 5, p.DirectP50ms, 1e-9)
	assert.InDelta(t, 45, p.AddedP50ms, 1e-9)
	assert.InDelta(t, 99-9.9, p.AddedP99ms, 1e-9)
}

// The forward preset runs once at a tiny size against hubs it starts, so
// that it cannot rot: ingest off, on, and the probe, every accepted
// callback received by the backend.
func TestTinyForwardRun(t *testing.T) {
	cfg := defaultConfig()
	withPreset(&cfg, "forward")
	cfg.Start, cfg.HubBin = true, hubtest.Binary(t)
	cfg.Duration, cfg.Publishers, cfg.Rate, cfg.Probes = time.Second, 4, 200, 20
	var r ForwardReport
	out := runFor(t, cfg, &r)
	assert.Positive(t, r.Off.Published)
	assert.Zero(t, r.Off.ForwardAccepted, "no backend when forwarding is off")
	assert.Positive(t, r.On.Published)
	assert.Equal(t, r.On.Published, r.On.ForwardAccepted)
	assert.Equal(t, r.On.ForwardAccepted, r.On.ForwardReceived)
	assert.Zero(t, r.On.ForwardMissing)
	assert.Equal(t, 20, r.Probe.N)
	assert.Positive(t, r.Probe.HubP50ms)
	assert.Positive(t, r.Probe.DirectP50ms)
	assert.Contains(t, string(out), "forwarding off")
}

func TestForwardNeedsStart(t *testing.T) {
	c := defaultConfig()
	c.Hub, c.Forward = "http://127.0.0.1:1", true
	assert.ErrorContains(t, c.validate(), "forwarding needs -start")
	c = defaultConfig()
	c.Hub, c.Preset = "http://127.0.0.1:1", mustPreset("forward")
	assert.ErrorContains(t, c.validate(), "forwarding needs -start")
}

// A run whose backend did not receive every accepted callback fails, and
// says how many are missing.
func TestForwardRunFailsWhenTheBackendMisses(t *testing.T) {
	cfg := defaultConfig()
	withPreset(&cfg, "ingest")
	cfg.Start, cfg.HubBin, cfg.Forward = true, hubtest.Binary(t), true
	cfg.Duration, cfg.Publishers, cfg.Rate = 500*time.Millisecond, 2, 20
	cfg.backendDown, cfg.drainLimit = true, time.Second
	out, err := runTool(t, cfg)
	require.ErrorContains(t, err, "the backend did not receive")
	assert.Contains(t, string(out), `"forward_missing"`, "the figures are printed all the same")
}
