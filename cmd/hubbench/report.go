package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printReport writes a preset's report: table, for people, unless
// jsonOnly, then figures as one line of JSON, the last, which scripts
// read.
func printReport(w io.Writer, jsonOnly bool, table func(io.Writer), figures any) {
	if !jsonOnly {
		table(w)
	}
	b, _ := json.Marshal(figures)
	fmt.Fprintf(w, "%s\n", b)
}

// writeColumns writes the tab-separated lines that fill writes as
// columns two spaces apart, without the padding that empty last cells
// leave behind.
func writeColumns(w io.Writer, fill func(tw io.Writer)) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fill(tw)
	tw.Flush()
	for line := range strings.Lines(buf.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}

// quotient is a / b to two decimals, or a dash where b is 0.
func quotient(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}
