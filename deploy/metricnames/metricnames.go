// Package metricnames knows which metrics the hub exports and which a
// PromQL expression names, so that the tests of the Grafana dashboard and
// the Prometheus rules fail when either names a metric the hub does not
// have: a renamed metric must not leave a panel empty or an alert silent.
package metricnames

import (
	"bufio"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/hub/imapi"
	"github.com/imhub/imhub/internal/hubtest"
	"github.com/imhub/imhub/internal/redistest"
)

// Exported returns the names of the metrics a hub exports. They come from
// two places: the /metrics of the built hub, started on a Redis of its
// own (a hub without one keeps no spool) with a spool and
// forwarding and an IM key (the Go and process collectors, imhub_broker_up,
// imhub_ready, the spool's and the forward queue's gauges, the
// membership's counters), and the registrations of the hub, callback and
// imapi packages, whose labelled metrics a fresh hub does not show until a
// first value of their labels.
func Exported(t testing.TB) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	srv := redistest.Start(t)
	p := hubtest.Start(t, []string{"-apps", "1400000000", "-jwt-secret", "metricnames-secret-metricnames-secret",
		"-redis", srv.URL(), "-spool-dir", t.TempDir(), "-forward", "1400000000=http://127.0.0.1:9/",
		"-im-keys", "1400000000:metricnames-im-key", "-im-api-url", "http://127.0.0.1:9"})
	resp, err := http.Get(p.URL("/metrics"))
	if err != nil {
		t.Fatalf("scrape the hub: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		// "# TYPE name kind" names every family, histograms by their base.
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names[strings.Fields(rest)[0]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the hub's metrics: %v", err)
	}
	rec := &recorder{names: names}
	hub.NewMetrics(rec)
	callback.NewMetrics(rec)
	imapi.NewMetrics(rec)
	return names
}

// recorder is a Registerer that only notes the names of what is registered.
type recorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return true }

// Known reports whether name is one of names, or a histogram's or
// summary's _bucket, _sum or _count series of one.
func Known(names map[string]bool, name string) bool {
	if names[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && names[base] {
			return true
		}
	}
	return false
}

var (
	strLit    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	matchers  = regexp.MustCompile(`\{[^}]*\}`)
	ranges    = regexp.MustCompile(`\[[^\]]*\]`)
	grafVar   = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	labelList = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	token     = regexp.MustCompile(`\d[\w.]*|[a-zA-Z_:][\w:]*\s*\(?`)
)

// keywords of PromQL that look like names.
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "bool": true, "offset": true, "inf": true, "nan": true,
}

// Names returns the metric names an expression reads. It is a scanner, not
// a parser: it drops string literals, label matchers, ranges, Grafana
// variables and the label lists of by, without, on, ignoring and
// group_left/right, and keeps each remaining name not followed by "(" (a
// function or an aggregation) and not a keyword. That is exact for the
// expressions of dashboards and alerts, which name metrics this way.
func Names(expr string) []string {
	s := strLit.ReplaceAllString(expr, `""`)
	s = matchers.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	s = grafVar.ReplaceAllString(s, " ")
	s = labelList.ReplaceAllString(s, " ")
	var out []string
	seen := map[string]bool{}
	for _, tok := range token.FindAllString(s, -1) {
		if tok[0] >= '0' && tok[0] <= '9' || strings.HasSuffix(tok, "(") {
			continue
		}
		name := strings.TrimSpace(tok)
		if keywords[strings.ToLower(name)] || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	return out
}
