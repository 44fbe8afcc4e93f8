package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/internal/hubtest"
)

func TestParseRoomSteps(t *testing.T) {
	plan, err := parseRoomSteps(defaultRoomSteps)
	require.NoError(t, err)
	assert.Equal(t, []roomFleet{{2000, []float64{10, 25, 50, 100}}, {10000, []float64{5, 10}}}, plan,
		"2,000 clients at 10, 25, 50 and 100 messages/s; 10,000 at 5 and 10")
	plan, err = parseRoomSteps(" 20 : 2.5, 5 ; ")
	require.NoError(t, err)
	assert.Equal(t, []roomFleet{{20, []float64{2.5, 5}}}, plan)
	for _, bad := range []string{"", ";", "2000", "x:10", "0:10", "-5:10", "20:", "20:0", "20:-1", "20:ten", "20:10,,20", "20:Inf", "20:NaN"} {
		_, err := parseRoomSteps(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestParseTargets(t *testing.T) {
	ts, err := parseTargets("imhub, floor")
	require.NoError(t, err)
	assert.Equal(t, []string{targetHub, targetFloor}, ts)
	for _, bad := range []string{"", "nginx", "imhub,imhub", "imhub,"} {
		_, err := parseTargets(bad)
		assert.Error(t, err, "%q", bad)
	}
}

// A room run is refused before anything starts when it could not run.
func TestRoomChecks(t *testing.T) {
	tests := []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"the defaults", func(*Config) {}, ""},
		{"without centrifugo, in memory", func(c *Config) { c.Targets, c.Redis = "imhub,floor", false }, ""},
		{"not started", func(c *Config) { c.Start, c.Hub = false, "http://x" }, "give -start"},
		{"centrifugo in memory", func(c *Config) { c.Redis = false }, "give -redis"},
		{"bad steps", func(c *Config) { c.RoomSteps = "lots" }, "-room-steps"},
		{"bad targets", func(c *Config) { c.Targets = "imhub,nginx" }, "-targets"},
		{"user channels", func(c *Config) { c.UserChannels = true }, "one group channel"},
		{"forwarding", func(c *Config) { c.Forward = true }, "forward"},
		{"too many clients", func(c *Config) { c.RoomSteps = "30000:5" }, "raise -sources"},
		{"enough sources", func(c *Config) { c.RoomSteps, c.Sources = "30000:5", 2 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := configFor("room")
			require.NoError(t, err)
			tt.set(&c)
			err = c.validate()
			if tt.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tt.want)
			}
		})
	}
}

// The table has a row for each fleet, rate and target, in the plan's
// order, each figure the median over the rounds.
func TestPrintRoom(t *testing.T) {
	res := func(p99, slowest float64, lost int64) *Result {
		return &Result{DeliveriesPerS: 20000, P50ms: 1, P99ms: p99, P999ms: 2 * p99, HubCPUPerM: 20,
			Expected: 1000, Received: 1000 - lost, Lost: lost, Spread: &spread{MedianP99ms: p99, SlowestP99ms: slowest, Clients: 10}}
	}
	rep := RoomReport{Runs: []RoomRun{
		{Round: 1, Target: targetHub, Clients: 10, Rate: 5, Result: res(4, 8, 0)},
		{Round: 1, Target: targetHub, Clients: 10, Rate: 10, Result: res(10, 100, 10)},
		{Round: 1, Target: targetFloor, Clients: 10, Rate: 5, Result: res(2, 2, 0)},
		{Round: 2, Target: targetHub, Clients: 10, Rate: 5, Result: res(6, 6, 0)},
		{Round: 2, Target: targetHub, Clients: 10, Rate: 10, Result: res(20, 20, 0)},
		{Round: 2, Target: targetFloor, Clients: 10, Rate: 5, Result: res(3, 3, 0)},
		{Round: 3, Target: targetHub, Clients: 10, Rate: 5, Result: res(5, 50, 0)},
	}}
	cfg, err := configFor("room")
	require.NoError(t, err)
	cfg.Rounds, cfg.Duration = 3, time.Second
	var b bytes.Buffer
	printRoom(&b, cfg, []roomFleet{{10, []float64{5, 10}}}, []string{targetHub, targetCentrifugo, targetFloor}, rep)
	var rows [][]string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "| 10 |") {
			rows = append(rows, strings.Split(strings.Trim(line, "| "), " | "))
		}
	}
	require.Len(t, rows, 3, "hub and floor at 5/s, the hub at 10/s; Centrifugo was not run\n%s", b.String())
	assert.Contains(t, b.String(), "3 rounds in turns, medians")
	// clients, rate, target, deliveries/s, p50, p99, p99.9, median client, slowest client, spread, CPU, loss, closed
	assert.Equal(t, []string{"10", "5", "imhub", "20000", "1.0 ms", "5.0 ms", "10.0 ms", "5.0 ms", "8.0 ms", "2.00×", "20.0 s", "0.000 %", "0"}, rows[0],
		"medians of three rounds: p99 4, 6, 5; slowest 8, 6, 50; spread the median of the rounds' 2, 1, 10")
	assert.Equal(t, "floor", rows[1][2])
	assert.Equal(t, []string{"10", "10", "imhub"}, rows[2][:3])
	assert.Equal(t, "15.0 ms", rows[2][5], "two rounds: the mean of the middle two")
	assert.Equal(t, "0.500 %", rows[2][11], "the loss of 1% and 0%")
}

// The room preset runs at a tiny size against a hub and the floor it
// starts: two steps of one second, every delivery arriving once, and each
// step's spread of the clients' p99s.
func TestTinyRoomRun(t *testing.T) {
	cfg, err := configFor("room")
	require.NoError(t, err)
	cfg.HubBin, cfg.Redis, cfg.Targets = hubtest.Binary(t), false, "imhub,floor"
	cfg.RoomSteps, cfg.Duration = "20:5,10", time.Second
	var rep RoomReport
	out := runFor(t, cfg, &rep)
	require.Len(t, rep.Runs, 4, "two steps on each of two targets")
	for i, run := range rep.Runs {
		want := []string{targetHub, targetHub, targetFloor, targetFloor}[i]
		assert.Equal(t, want, run.Target)
		assert.Equal(t, 20, run.Clients)
		assert.Equal(t, []float64{5, 10}[i%2], run.Rate)
		r := run.Result
		require.NotNil(t, r)
		assert.Positive(t, r.Published, "%s at %v/s", run.Target, run.Rate)
		assert.Equal(t, r.Published*20, r.Expected, "every message to every client")
		assert.Equal(t, r.Expected, r.Received, "no delivery lost")
		assert.Zero(t, r.Repeats)
		assert.Zero(t, r.ClientsGone)
		require.NotNil(t, r.Spread, "the clients' own p99s")
		assert.Equal(t, 20, r.Spread.Clients)
		assert.Positive(t, r.Spread.MedianP99ms)
		assert.GreaterOrEqual(t, r.Spread.SlowestP99ms, r.Spread.MedianP99ms)
	}
	assert.InDelta(t, rep.Runs[0].Result.BytesPerDelivery, rep.Runs[2].Result.BytesPerDelivery, 1, "the floor's frames are the hub's size")
	assert.Contains(t, string(out), "| 20 | 10 | floor |", "and a table for people")
}

// The ratios of a step are the median of each round's own ratio with the
// range, and a target sustains the largest rate whose median p99 is
// within the bound with nothing lost.
func TestPrintRoomRatiosAndSustainedRates(t *testing.T) {
	res := func(p99, cpu float64, lost int64) *Result {
		return &Result{P99ms: p99, P999ms: p99 + 1, HubCPUPerM: cpu, Expected: 100, Received: 100 - lost, Lost: lost, DeliveriesPerS: 100}
	}
	rep := RoomReport{}
	add := func(round int, target string, rate, p99, cpu float64, lost int64) {
		rep.Runs = append(rep.Runs, RoomRun{Round: round, Target: target, Clients: 10, Rate: rate, Result: res(p99, cpu, lost)})
	}
	for round, k := range []float64{1, 2} {
		add(round+1, targetHub, 5, 10*k, 10, 0)
		add(round+1, targetCentrifugo, 5, 40, 20, 0)
		add(round+1, targetFloor, 5, 10, 5, 0)
		add(round+1, targetHub, 10, 200, 10, 0)
		add(round+1, targetCentrifugo, 10, 900, 20, 0)
		add(round+1, targetFloor, 10, 100, 5, 3)
	}
	for round := range 2 {
		// 20/s asked of 10 clients is 200 deliveries/s; 100 arrived.
		add(round+1, targetHub, 20, 50, 10, 0)
	}
	cfg, err := configFor("room")
	require.NoError(t, err)
	cfg.Rounds = 2
	var b bytes.Buffer
	printRoom(&b, cfg, []roomFleet{{10, []float64{5, 10, 20}}}, []string{targetHub, targetCentrifugo, targetFloor}, rep)
	out := b.String()
	row := func(prefix string) []string {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, prefix) {
				return strings.Split(strings.Trim(line, "| "), " | ")
			}
		}
		t.Fatalf("no row %q in\n%s", prefix, out)
		return nil
	}
	assert.Equal(t, []string{"10 clients at 5/s", "0.38 (0.25–0.50)", "0.39 (0.27–0.51)", "0.25 (0.25–0.25)", "0.50 (0.50–0.50)", "2.00 (2.00–2.00)"},
		row("| 10 clients at 5/s |"), "hub p99 10 then 20 against 40: ratios 0.25 and 0.50")
	assert.Equal(t, "0.22 (0.22–0.22)", row("| 10 clients at 10/s |")[1])
	assert.Contains(t, out, "- 10 clients: imhub 10/s, centrifugo 5/s, floor 5/s\n",
		"Centrifugo's p99 at 10/s is past the bound; the floor lost deliveries there; the hub delivered half of 20/s")

	// Without Centrifugo only the floor's ratio is printed, and a target
	// that sustained no rate says so.
	b.Reset()
	printRoom(&b, cfg, []roomFleet{{10, []float64{10}}}, []string{targetHub, targetFloor}, RoomReport{Runs: []RoomRun{
		{Round: 1, Target: targetHub, Clients: 10, Rate: 10, Result: res(300, 10, 0)},
		{Round: 1, Target: targetFloor, Clients: 10, Rate: 10, Result: res(100, 5, 0)},
		{Round: 2, Target: targetHub, Clients: 10, Rate: 10, Result: res(300, 10, 0)},
		{Round: 2, Target: targetFloor, Clients: 10, Rate: 10, Result: res(100, 5, 0)},
	}})
	out = b.String()
	assert.Equal(t, []string{"step", "CPU per delivery, imhub / floor"}, row("| step |"))
	assert.Contains(t, out, "- 10 clients: imhub none of the rates, floor 10/s or more (the highest rate run)\n")
}
