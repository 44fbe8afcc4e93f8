// Package prometheus checks the alerting rules: promtool finds them valid
// and fires each alert in the cases of imhub-rules.test.yml (and only
// there), and every metric they read is one the hub exports, one the
// protocol specifies and the hub does not export yet, or one from outside
// the hub listed below.
package prometheus

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/imhub/imhub/callback"
	"github.com/imhub/imhub/deploy/metricnames"
	"github.com/imhub/imhub/hub"
	"github.com/imhub/imhub/internal/hubtest"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

// notFromTheHub are metrics the rules read that the hub does not export
// today, each with why.
var notFromTheHub = map[string]string{
	"up":            "Prometheus's own, per scrape target",
	"probe_success": "the blackbox exporter's, probing /readyz",
}

func promtool(t *testing.T) string {
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing: the alert rules cannot be checked. Run `make deps` " +
			"(it installs Debian's prometheus package, which ships promtool).")
	}
	return path
}

func TestRulesAreValid(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", "imhub-rules.yml").CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", out)
}

// Each alert fires in its test case and stays quiet in the other.
func TestRulesFireWhereTheyShould(t *testing.T) {
	out, err := exec.Command(promtool(t), "test", "rules", "imhub-rules.test.yml").CombinedOutput()
	require.NoError(t, err, "promtool test rules:\n%s", out)
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert string `json:"alert"`
			Expr  string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// Every alert has a case where it fires and one where it does not.
func TestEveryAlertIsTestedBothWays(t *testing.T) {
	rules := readRules(t)
	b, err := os.ReadFile("imhub-rules.test.yml")
	require.NoError(t, err)
	var tests ruleTests
	require.NoError(t, yaml.Unmarshal(b, &tests))
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			assert.True(t, fires[r.Alert], "%s: no case where it fires", r.Alert)
			assert.True(t, quiet[r.Alert], "%s: no case where it stays quiet", r.Alert)
		}
	}
}

func TestRulesReadTheHubsMetrics(t *testing.T) {
	names := metricnames.Exported(t)
	rules := readRules(t)
	used := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			got := metricnames.Names(r.Expr)
			require.NotEmpty(t, got, "%s: no metric found in %q", r.Alert, r.Expr)
			for _, n := range got {
				used[n] = true
				if _, listed := notFromTheHub[n]; listed {
					continue
				}
				assert.True(t, metricnames.Known(names, n), "%s reads %s, which the hub does not export", r.Alert, n)
			}
		}
	}
	for n, why := range notFromTheHub {
		assert.True(t, used[n], "%s (%s) is listed but no rule reads it", n, why)
		if n != "up" && n != "probe_success" {
			assert.False(t, names[n], "%s is exported now: take it off the list", n)
		}
	}
	// The list of exports is real: it holds the metrics of each source.
	for _, n := range []string{"go_goroutines", "process_open_fds", "imhub_broker_up", "imhub_spool_bytes",
		"imhub_ws_closes_total", "imhub_callbacks_total", "imhub_publish_duration_seconds"} {
		assert.True(t, names[n], "%s missing from the hub's exports", n)
	}
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile("imhub-rules.yml")
	require.NoError(t, err)
	var rules ruleFile
	require.NoError(t, yaml.Unmarshal(b, &rules))
	require.NotEmpty(t, rules.Groups)
	return rules
}

var resultMatcher = regexp.MustCompile(`result=~?"([^"]*)"`)

// The label values the rules match are those the code writes.
func TestRulesMatchTheCodesLabelValues(t *testing.T) {
	results := map[string]bool{}
	for _, r := range []string{callback.ResultPublished, callback.ResultDuplicate, callback.ResultSpooled,
		callback.ResultIgnored, callback.ResultBadMethod, callback.ResultUnknownApp, callback.ResultUnauthorized,
		callback.ResultTooLarge, callback.ResultBadRequest, callback.ResultUnavailable} {
		results[r] = true
	}
	b, err := os.ReadFile("imhub-rules.yml")
	require.NoError(t, err)
	found := resultMatcher.FindAllStringSubmatch(string(b), -1)
	require.NotEmpty(t, found)
	for _, m := range found {
		for v := range strings.SplitSeq(m[1], "|") {
			assert.True(t, results[v], "the rules match result %q, which the callback endpoint never writes", v)
		}
	}
	assert.Contains(t, string(b), `code="`+strconv.Itoa(int(hub.CloseTooSlow))+`"`, "the slow-client close code")
}
