package kubernetes

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// summary is BENCHMARKS.md's summary: each row of its tables, the first
// cell to the second.
func summary(t *testing.T) map[string]string {
	b, err := os.ReadFile("../../BENCHMARKS.md")
	require.NoError(t, err)
	_, sec, ok := strings.Cut(string(b), "\n## Summary\n")
	require.True(t, ok, "BENCHMARKS.md opens with a summary")
	sec, _, _ = strings.Cut(sec, "\n## ")
	rows := map[string]string{}
	for line := range strings.SplitSeq(sec, "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if strings.HasPrefix(line, "|") && len(cells) == 2 {
			rows[cells[0]] = cells[1]
		}
	}
	return rows
}

// A figure quoted where an operator reads it (the README, deploy/README.md
// and the manifests' memory budget) is the summary's: each is found by
// what it measures and compared with the summary's row of that measure.
func TestFiguresAgreeWithTheSummary(t *testing.T) {
	rows := summary(t)
	row := func(label string) string {
		v, ok := rows[label]
		require.True(t, ok, "the summary has %q", label)
		return v
	}
	first := func(v string) string { return strings.Fields(v)[0] }
	busy := row("RSS per busy connection")
	busyRange := regexp.MustCompile(`\(([\d.]+)–([\d.]+) KiB over the presets\)`).FindStringSubmatch(busy)
	require.NotNil(t, busyRange, "the busy figure has its range over the presets")
	cpu := []string{
		first(row("CPU per million deliveries, 20,000 deliveries/s (2 a second per connection)")),
		first(row("CPU per million deliveries at saturation")),
	}
	quoted := []struct {
		what    string
		pattern string
		want    []string
	}{
		{"CPU per million deliveries", `([\d.]+) CPU-seconds per million`, cpu},
		{"idle memory", `([\d.]+) KiB per idle`, []string{first(row("RSS per idle subscribed connection"))}},
		{"busy memory", `([\d.]+) KiB per busy (?:one|connection measured)`, []string{first(busy)}},
		{"busy memory's range", `([\d.]+–[\d.]+) KiB over the presets`, []string{busyRange[1] + "–" + busyRange[2]}},
		{"the top of the busy range", `the ([\d.]+) KiB`, []string{busyRange[2]}},
		{"ingest", `([\d,]+) signed callbacks/s`, []string{row("signed callbacks/s accepted (ingest, 64 senders)")}},
		{"saturation", `([\d,]+) deliveries/s on the 2 cores`, []string{row("deliveries/s at saturation, 2 cores")}},
		{"p99", `p99 ([\d.]+) ms`, []string{first(row("p99 latency, 20,000 deliveries/s"))}},
		{"the commit", `commit ([0-9a-f]{7,})`, []string{row("commit")}},
	}
	found := map[string]int{}
	for _, file := range []string{"../../README.md", "../README.md", "base/hub.yaml"} {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		// A comment of the manifests runs over lines: read it as one.
		text := strings.NewReplacer("\n  # ", " ", "\n", " ").Replace(string(b))
		for _, q := range quoted {
			for _, m := range regexp.MustCompile(q.pattern).FindAllStringSubmatch(text, -1) {
				found[q.what]++
				assert.Contains(t, q.want, m[1], "%s: %s %q is not the summary's", file, q.what, m[0])
			}
		}
	}
	for _, q := range quoted {
		assert.NotZero(t, found[q.what], "%s is quoted somewhere: else its pattern no longer finds it", q.what)
	}
}
