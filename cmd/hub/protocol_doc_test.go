package main

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/imhub/imhub/callback"
)

// protocolDoc is the wire contract for client authors. The tests below hold
// it and the code to each other, both ways: a name the page gives that the
// hub lacks is a promise not kept, and one the hub has that the page lacks
// is one a client author cannot know of.
const protocolDoc = "../../docs/protocol.md"

// docTable returns the first column of the page's table whose header row is
// header, each cell without its backticks.
func docTable(t *testing.T, doc, header string) []string {
	t.Helper()
	var col []string
	for _, row := range docRows(t, doc, header) {
		col = append(col, strings.Trim(row[0], "`"))
	}
	return col
}

// docRows returns the rows of the page's table whose header row is header,
// each as its cells, trimmed.
func docRows(t *testing.T, doc, header string) [][]string {
	t.Helper()
	lines := strings.Split(doc, "\n")
	at := slices.Index(lines, header)
	if at < 0 {
		t.Fatalf("%s has no table headed %q", protocolDoc, header)
	}
	var rows [][]string
	for _, l := range lines[at+2:] { // past the header and its |---| row
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		rows = append(rows, cells)
	}
	if len(rows) == 0 {
		t.Fatalf("the table headed %q in %s is empty", header, protocolDoc)
	}
	return rows
}

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatalf("read the protocol page: %v", err)
	}
	return string(b)
}

// sameSet fails t when the page's names and the code's differ, saying which
// side lacks which.
func sameSet(t *testing.T, what string, doc, code []string) {
	t.Helper()
	slices.Sort(doc)
	slices.Sort(code)
	if d := slices.Compact(slices.Clone(doc)); len(d) != len(doc) {
		t.Errorf("%s: %s names some twice: %v", what, protocolDoc, doc)
	}
	for _, n := range code {
		if !slices.Contains(doc, n) {
			t.Errorf("%s: the hub has %q, which %s does not name", what, n, protocolDoc)
		}
	}
	for _, n := range doc {
		if !slices.Contains(code, n) {
			t.Errorf("%s: %s names %q, which the hub does not have", what, protocolDoc, n)
		}
	}
}

// parseDir parses the non-test Go files of a package directory.
func parseDir(t *testing.T, dir string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", n, err)
		}
		files = append(files, f)
	}
	return files
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// constants returns the package's exported constants whose names start with
// prefix, each with its value expression.
func constants(files []*ast.File, prefix string) map[string]ast.Expr {
	out := map[string]ast.Expr{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				v := s.(*ast.ValueSpec)
				for i, n := range v.Names {
					if strings.HasPrefix(n.Name, prefix) && n.IsExported() && i < len(v.Values) {
						out[n.Name] = v.Values[i]
					}
				}
			}
		}
	}
	return out
}

// keyedStrings returns the string literals given to field key in the
// package's composite literals of the types that typ accepts, such as every
// Op: "…" of a frame the hub sends.
func keyedStrings(files []*ast.File, typ func(string) bool, key string) []string {
	var out []string
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.CompositeLit)
			if !ok || !typ(exprString(lit.Type)) {
				return true
			}
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok || exprString(kv.Key) != key {
					continue
				}
				if s, ok := stringLit(kv.Value); ok {
					out = append(out, s)
				}
			}
			return true
		})
	}
	return out
}

// switchCases returns the string cases of every switch on the expression
// written as tag (such as "f.Op").
func switchCases(files []*ast.File, tag string) []string {
	var out []string
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			sw, ok := n.(*ast.SwitchStmt)
			if !ok || sw.Tag == nil || exprString(sw.Tag) != tag {
				return true
			}
			for _, c := range sw.Body.List {
				for _, e := range c.(*ast.CaseClause).List {
					if s, ok := stringLit(e); ok && s != "" {
						out = append(out, s)
					}
				}
			}
			return true
		})
	}
	return out
}

// exprString writes a selector or identifier back as source.
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	}
	return ""
}

func TestProtocolDocOps(t *testing.T) {
	doc := readDoc(t)
	files := parseDir(t, "../../hub")

	sameSet(t, "client ops", docTable(t, doc, "| op | fields | answered with |"), switchCases(files, "f.Op"))

	// Every type of frame the hub sends is named for it: serverFrame,
	// presenceFrame.
	sent := func(typ string) bool { return strings.HasSuffix(typ, "Frame") && typ != "clientFrame" }
	server := keyedStrings(files, sent, "Op")
	// The event frame is written byte by byte, not as a serverFrame.
	raw := regexp.MustCompile(`\{"op":"([a-z]+)"`)
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok {
				s, _ := stringLit(lit)
				for _, m := range raw.FindAllStringSubmatch(s, -1) {
					server = append(server, m[1])
				}
			}
			return true
		})
	}
	sameSet(t, "hub ops", docTable(t, doc, "| op | fields | when |"), slices.Compact(sorted(server)))
}

func sorted(s []string) []string { slices.Sort(s); return s }

func TestProtocolDocErrorCodes(t *testing.T) {
	var code []string
	for name, v := range constants(parseDir(t, "../../hub"), "Code") {
		s, ok := stringLit(v)
		if !ok {
			t.Fatalf("hub.%s is not a string constant", name)
		}
		code = append(code, s)
	}
	sameSet(t, "error codes", docTable(t, readDoc(t), "| code | meaning |"), code)
}

// libraryStatus resolves the coder/websocket status names the hub's close
// codes are written with.
var libraryStatus = map[string]websocket.StatusCode{
	"websocket.StatusNormalClosure":           websocket.StatusNormalClosure,
	"websocket.StatusProtocolError":           websocket.StatusProtocolError,
	"websocket.StatusInvalidFramePayloadData": websocket.StatusInvalidFramePayloadData,
	"websocket.StatusPolicyViolation":         websocket.StatusPolicyViolation,
	"websocket.StatusMessageTooBig":           websocket.StatusMessageTooBig,
	"websocket.StatusServiceRestart":          websocket.StatusServiceRestart,
	"websocket.StatusInternalError":           websocket.StatusInternalError,
	"websocket.StatusTryAgainLater":           websocket.StatusTryAgainLater,
	"websocket.StatusGoingAway":               websocket.StatusGoingAway,
	"websocket.StatusUnsupportedData":         websocket.StatusUnsupportedData,
	"websocket.StatusMandatoryExtension":      websocket.StatusMandatoryExtension,
	"websocket.StatusAbnormalClosure":         websocket.StatusAbnormalClosure,
	"websocket.StatusNoStatusRcvd":            websocket.StatusNoStatusRcvd,
	"websocket.StatusBadGateway":              websocket.StatusBadGateway,
	"websocket.StatusTLSHandshake":            websocket.StatusTLSHandshake,
}

func TestProtocolDocCloseCodes(t *testing.T) {
	codes := map[int]string{}
	for _, dir := range []string{"../../hub", "../../hub/wsframe"} {
		for name, v := range constants(parseDir(t, dir), "Close") {
			var n int
			switch v := v.(type) {
			case *ast.BasicLit:
				var err error
				if n, err = strconv.Atoi(v.Value); err != nil {
					t.Fatalf("%s's %s: %v", dir, name, err)
				}
			default:
				s, ok := libraryStatus[exprString(v)]
				if !ok {
					t.Fatalf("%s's %s = %s: add the library's status to libraryStatus", dir, name, exprString(v))
				}
				n = int(s)
			}
			codes[n] = name
		}
	}
	// A normal closure is no news to a client, and 1005 is the absence of
	// a code, never sent.
	delete(codes, int(websocket.StatusNormalClosure))
	delete(codes, int(websocket.StatusNoStatusRcvd))
	var code []string
	for n := range codes {
		code = append(code, strconv.Itoa(n))
	}
	sameSet(t, "close codes", docTable(t, readDoc(t), "| code | meaning | what the client should do |"), code)
}

func TestProtocolDocEventTypes(t *testing.T) {
	var code []string
	// The IM's events, and the server API's own.
	for _, dir := range []string{"../../callback", "../../hub/api"} {
		for name, v := range constants(parseDir(t, dir), "Type") {
			s, ok := stringLit(v)
			if !ok {
				t.Fatalf("%s's %s is not a string constant", dir, name)
			}
			code = append(code, s)
		}
	}
	sameSet(t, "event types", docTable(t, readDoc(t), "| type | IM command | channels |"), slices.Compact(sorted(code)))
}

func TestProtocolDocFlags(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &help); err == nil {
		t.Fatal("hub -h did not stop at the help")
	}
	var code []string
	for _, m := range regexp.MustCompile(`(?m)^  (-[a-z0-9-]+)`).FindAllStringSubmatch(help.String(), -1) {
		code = append(code, m[1])
	}
	if len(code) < 20 {
		t.Fatalf("hub -h lists only %d flags:\n%s", len(code), help.String())
	}
	sameSet(t, "flags", docTable(t, readDoc(t), "| flag | default | what it sets |"), code)
}

// The flags table's defaults are hub -h's: a literal in the table is the
// flag's default (durations compared as durations, so 10m is 10m0s), and
// a word (none, off, any) or `0` stands for a flag hub -h shows no default
// for.
func TestProtocolDocFlagDefaults(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &help); err == nil {
		t.Fatal("hub -h did not stop at the help")
	}
	code := map[string]string{} // flag -> its default as hub -h shows it, "" for none
	var flag string
	for _, line := range strings.Split(help.String(), "\n") {
		if m := regexp.MustCompile(`^  (-[a-z0-9-]+)`).FindStringSubmatch(line); m != nil {
			flag = m[1]
			code[flag] = ""
		}
		if m := regexp.MustCompile(`\(default (.*)\)$`).FindStringSubmatch(line); m != nil && flag != "" {
			code[flag] = strings.Trim(m[1], `"`)
		}
	}
	literal := regexp.MustCompile("^`([^`]*)`$")
	for _, row := range docRows(t, readDoc(t), "| flag | default | what it sets |") {
		name, doc := strings.Trim(row[0], "`"), row[1]
		got, ok := code[name]
		if !ok {
			continue // TestProtocolDocFlags names it
		}
		m := literal.FindStringSubmatch(doc)
		switch {
		case m == nil && got != "":
			t.Errorf("%s: the page says %q, hub -h shows the default %s", name, doc, got)
		case m == nil:
		case got == "" && m[1] != "0":
			t.Errorf("%s: the page says %s, hub -h shows no default", name, doc)
		case got != "" && !sameDefault(m[1], got):
			t.Errorf("%s: the page says %s, hub -h shows the default %s", name, doc, got)
		}
	}
}

// sameDefault reports whether the page's default and hub -h's are one
// value: the same text, or the same duration written two ways.
func sameDefault(doc, code string) bool {
	if doc == code {
		return true
	}
	a, errA := time.ParseDuration(doc)
	b, errB := time.ParseDuration(code)
	return errA == nil && errB == nil && a == b
}

// The retries table names each command the callback handler publishes,
// once, and says of each what the parser does: a callback parsed again
// later, as a retry is, keeps its id ("one event"), and without its
// EventTime keeps it only where the table says "one event" alone. Each
// command is tried on the IM's own examples, the golden inputs of the
// callback package.
func TestProtocolDocRetries(t *testing.T) {
	const once, twice = "one event", "one event; two without `EventTime`"
	said := map[string]string{}
	for _, row := range docRows(t, readDoc(t), "| IM command | `id` from | a retry |") {
		if len(row) != 3 || (row[2] != once && row[2] != twice) {
			t.Errorf("retries: the row %q does not end in %q or %q", row, once, twice)
			continue
		}
		said[strings.Trim(row[0], "`")] = row[2]
	}
	sameSet(t, "retried commands", docTable(t, readDoc(t), "| IM command | `id` from | a retry |"), slices.Clone(callback.Commands))

	inputs, err := filepath.Glob("../../callback/testdata/golden/*.json")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs in callback/testdata/golden: %v", err)
	}
	tried := map[string]bool{}
	for _, in := range inputs {
		body, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var cmd string
		_ = json.Unmarshal(fields["CallbackCommand"], &cmd)
		_, hasTime := fields["EventTime"]
		delete(fields, "EventTime")
		untimed, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		id := func(body []byte, at time.Time) string {
			ev, _, err := callback.Parse(callback.Request{App: "1400000000", Command: cmd, Received: at}, body)
			if err != nil {
				t.Fatalf("%s: %v", in, err)
			}
			return ev.ID
		}
		first, retry := time.UnixMilli(1700000000123), time.UnixMilli(1700000005123)
		sameAsIs, sameUntimed := id(body, first) == id(body, retry), id(untimed, first) == id(untimed, retry)
		if want := said[cmd] == once || hasTime; sameAsIs != want {
			t.Errorf("%s (%s): a retry keeps its id: %v, the page says %q", filepath.Base(in), cmd, sameAsIs, said[cmd])
		}
		if want := said[cmd] == once; sameUntimed != want {
			t.Errorf("%s (%s) without EventTime: a retry keeps its id: %v, the page says %q", filepath.Base(in), cmd, sameUntimed, said[cmd])
		}
		tried[cmd] = true
	}
	for _, cmd := range callback.Commands {
		if !tried[cmd] {
			t.Errorf("retries: no golden input of %s to try the page's %q on", cmd, said[cmd])
		}
	}
}
