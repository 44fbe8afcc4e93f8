// Package grafana checks the dashboard: it is a Grafana dashboard whose
// panels lie on the grid without overlapping, and every query in it names
// only metrics the hub exports, so that a renamed metric cannot leave a
// panel silently empty.
package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imhub/imhub/deploy/metricnames"
	"github.com/imhub/imhub/internal/hubtest"
)

func TestMain(m *testing.M) { hubtest.Main(m) }

type gridPos struct{ H, W, X, Y int }

type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		ID      int     `json:"id"`
		Type    string  `json:"type"`
		Title   string  `json:"title"`
		GridPos gridPos `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("imhub-dashboard.json")
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	require.NotEmpty(t, d.Title)
	require.NotEmpty(t, d.UID)
	require.NotEmpty(t, d.Panels)
	return d
}

func TestDashboardLayout(t *testing.T) {
	d := load(t)
	ids := map[int]bool{}
	var cells [][24]string // rows of the grid, by panel title
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		g := p.GridPos
		assert.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24 && g.Y >= 0, "%q lies off the grid: %+v", p.Title, g)
		if p.Type == "row" {
			assert.Empty(t, p.Targets, "row %q has queries", p.Title)
			continue
		}
		assert.NotEmpty(t, p.Targets, "%q has no query", p.Title)
		for len(cells) < g.Y+g.H {
			cells = append(cells, [24]string{})
		}
		for y := g.Y; y < g.Y+g.H; y++ {
			for x := g.X; x < min(g.X+g.W, 24); x++ {
				assert.Empty(t, cells[y][x], "%q overlaps %q", p.Title, cells[y][x])
				cells[y][x] = p.Title
			}
		}
	}
}

// labelValues is the variable query label_values(metric, label).
var labelValues = regexp.MustCompile(`^label_values\((\w+)\s*,\s*\w+\)$`)

func TestDashboardQueriesReadTheHubsMetrics(t *testing.T) {
	d := load(t)
	names := metricnames.Exported(t)
	n := 0
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			got := metricnames.Names(tg.Expr)
			require.NotEmpty(t, got, "%q %s: no metric in %q", p.Title, tg.RefID, tg.Expr)
			for _, m := range got {
				n++
				assert.True(t, metricnames.Known(names, m), "%q reads %s, which the hub does not export", p.Title, m)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		require.NoError(t, json.Unmarshal(v.Query, &q), "variable %s", v.Name)
		m := labelValues.FindStringSubmatch(q.Query)
		require.NotNil(t, m, "variable %s: want label_values(metric, label), got %q", v.Name, q.Query)
		assert.True(t, metricnames.Known(names, m[1]), "variable %s reads %s, which the hub does not export", v.Name, m[1])
	}
	assert.Greater(t, n, 20, "the dashboard's queries were read")
}
