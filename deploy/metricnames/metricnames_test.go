package metricnames

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNames(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`imhub_broker_up == 0`, []string{"imhub_broker_up"}},
		{`sum by (job, instance) (rate(imhub_callbacks_total{result=~"a|b"}[5m])) / sum by (job) (rate(imhub_callbacks_total[5m])) > 0.05`,
			[]string{"imhub_callbacks_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(imhub_fanout_duration_seconds_bucket{instance=~"$instance"}[$__rate_interval])))`,
			[]string{"imhub_fanout_duration_seconds_bucket"}},
		{`a_bytes / a_max > 0.8 or (a_bytes > 0.8 * 268435456 unless on(job, instance) a_max)`, []string{"a_bytes", "a_max"}},
		{`process_open_fds offset 1h / ignoring(x) group_left(y) process_max_fds > 1e3`, []string{"process_open_fds", "process_max_fds"}},
		{`sum(rate(x_total{code="4008"}[10m])) by (instance) and bool up`, []string{"x_total", "up"}},
		{`label_replace(metric_one, "dst", "$1", "src", "(.*)")`, []string{"metric_one"}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, Names(c.expr), c.expr)
	}
}

func TestKnown(t *testing.T) {
	names := map[string]bool{"imhub_fanout_duration_seconds": true, "go_goroutines": true}
	assert.True(t, Known(names, "go_goroutines"))
	assert.True(t, Known(names, "imhub_fanout_duration_seconds_bucket"))
	assert.True(t, Known(names, "imhub_fanout_duration_seconds_count"))
	assert.False(t, Known(names, "imhub_fanout_seconds_bucket"))
	assert.False(t, Known(names, "go_goroutines_total"))
}
