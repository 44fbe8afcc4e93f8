package main

// A small SVG line-chart writer for the scaling plot, so that the bench
// draws its own figures with nothing but the standard library.

import (
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

type xy struct{ X, Y float64 }

// chart is one panel: a line through Points, each marked by a circle.
type chart struct {
	Title, X, Y string
	LogX, LogY  bool
	Points      []xy
}

const (
	chartW, chartH = 460, 300
	padL, padR     = 64, 20
	padT, padB     = 36, 52
)

// drawCharts writes the charts as one SVG document, cols panels a row.
func drawCharts(w io.Writer, title string, charts []chart, cols int) error {
	if cols < 1 || len(charts) == 0 {
		return errors.New("no charts to draw")
	}
	rows := (len(charts) + cols - 1) / cols
	width, height := cols*chartW, rows*chartH+30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n", width/2, html.EscapeString(title))
	for i, c := range charts {
		ox, oy := (i%cols)*chartW, 30+(i/cols)*chartH
		if err := c.draw(&b, ox, oy); err != nil {
			return fmt.Errorf("chart %q: %w", c.Title, err)
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func (c chart) draw(b *strings.Builder, ox, oy int) error {
	x0, y0 := float64(ox+padL), float64(oy+chartH-padB) // the origin, bottom left
	pw, ph := float64(chartW-padL-padR), float64(chartH-padT-padB)
	fmt.Fprintf(b, `<g><text x="%d" y="%d" text-anchor="middle" font-weight="bold">%s</text>`+"\n", ox+chartW/2, oy+padT-14, html.EscapeString(c.Title))
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, y0, x0+pw, y0)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, y0, x0, y0-ph)
	fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x0+pw/2, oy+chartH-12, html.EscapeString(c.X))
	fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="middle" transform="rotate(-90 %d %.1f)">%s</text>`+"\n", ox+16, y0-ph/2, ox+16, y0-ph/2, html.EscapeString(c.Y))
	if len(c.Points) == 0 {
		b.WriteString("</g>\n")
		return nil
	}
	fx := func(v float64) float64 { return v }
	if c.LogX {
		fx = math.Log10
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), 0.0
	for _, p := range c.Points {
		if c.LogX && p.X <= 0 {
			return fmt.Errorf("x %g on a log scale", p.X)
		}
		if math.IsNaN(p.Y) || math.IsInf(p.Y, 0) || p.Y < 0 || (c.LogY && p.Y <= 0) {
			return fmt.Errorf("y %g", p.Y)
		}
		xmin, xmax = math.Min(xmin, fx(p.X)), math.Max(xmax, fx(p.X))
		ymin, ymax = math.Min(ymin, p.Y), math.Max(ymax, p.Y)
	}
	if !c.LogX {
		xmin = 0
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	// The y axis: from 0 to a round ceiling in five steps, or on a log
	// scale, from the power of ten below the least value to the one above
	// the greatest, a gridline at each.
	var ticks []float64
	py := func(v float64) float64 { return y0 - v/ymax*ph }
	if c.LogY {
		lo, hi := math.Floor(math.Log10(ymin)), math.Ceil(math.Log10(ymax))
		if hi == lo {
			hi++
		}
		for e := lo; e <= hi; e++ {
			ticks = append(ticks, math.Pow(10, e))
		}
		py = func(v float64) float64 { return y0 - (math.Log10(v)-lo)/(hi-lo)*ph }
	} else {
		ymax = niceCeil(ymax)
		for i := 0; i <= 4; i++ {
			ticks = append(ticks, ymax*float64(i)/4)
		}
	}
	px := func(v float64) float64 { return x0 + (fx(v)-xmin)/(xmax-xmin)*pw }
	// Gridlines and labels: the ticks on y; on x, each point's own value.
	for _, v := range ticks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, py(v), x0+pw, py(v))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, py(v)+4, label(v))
	}
	for _, p := range c.Points {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", px(p.X), y0+16, label(p.X))
	}
	var line []string
	for _, p := range c.Points {
		line = append(line, fmt.Sprintf("%.1f,%.1f", px(p.X), py(p.Y)))
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="#1f6feb" stroke-width="2"/>`+"\n", strings.Join(line, " "))
	for _, p := range c.Points {
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#1f6feb"><title>%s: %s</title></circle>`+"\n",
			px(p.X), py(p.Y), label(p.X), label(p.Y))
	}
	b.WriteString("</g>\n")
	return nil
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for the axis.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// label writes a value short: 18000 as 18k, 2.5 as 2.5.
func label(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 100 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
