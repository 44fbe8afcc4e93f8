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

// ParseWithJSONForTest is Parse with every object of the body decoded by
// encoding/json (see parse_ref_test.go). It swaps a package variable: not
// for tests that run in parallel.
func ParseWithJSONForTest(req Request, body []byte) (*Event, []string, error) {
	splitHook = &jsonSplit
	defer func() { splitHook = nil }()
	return Parse(req, body)
}

// RefEncodeForTest is Encode done by encoding/json.
var RefEncodeForTest = refEncode
