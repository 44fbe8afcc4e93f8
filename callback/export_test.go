package callback

import "github.com/prometheus/client_golang/prometheus"

// CounterForTest returns the callbacks counter of one command and result.
func (m *Metrics) CounterForTest(cmd, result string) prometheus.Collector {
	return m.callbacks.WithLabelValues(commandLabel(cmd), result)
}

// InvalidUTF8ForTest returns the counter of repaired callbacks of one
// command.
func (m *Metrics) InvalidUTF8ForTest(cmd string) prometheus.Collector {
	return m.invalidUTF8.WithLabelValues(commandLabel(cmd))
}

// RefParseForTest and RefEncodeForTest are Parse and Encode as they were,
// with encoding/json (see parse_ref_test.go).
var (
	RefParseForTest  = refParse
	RefEncodeForTest = refEncode
)
