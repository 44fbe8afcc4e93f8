package redisprobe

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A command's line of INFO commandstats gives its integer fields; a
// command whose name another's begins with is not taken for it, and a
// command that never ran has none.
func TestCommandStatLine(t *testing.T) {
	info := "# Commandstats\r\n" +
		"cmdstat_waitaof:calls=9,usec=90,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_wait:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=1\r\n" +
		"cmdstat_set:calls=7,usec=21,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n"
	tests := []struct {
		cmd  string
		want map[string]int
	}{
		{"wait", map[string]int{"calls": 3, "usec": 12, "rejected_calls": 0, "failed_calls": 1}},
		{"set", map[string]int{"calls": 7, "usec": 21, "rejected_calls": 0, "failed_calls": 0}},
		{"get", map[string]int{}},
		{"wai", map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			assert.Equal(t, tt.want, commandStat(info, tt.cmd), "usec_per_call is not whole: left out")
		})
	}
}
