// Unit tests of the metrics parser and the Forwarding panel's computations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LAG_WARN, forwardPanel, forwardReading, forwardView, parseMetrics, perSecond, seconds } from '../static/metrics.js';

const sample = `# HELP imhub_forward_backlog Callbacks queued for an app's backend and not yet delivered.
# TYPE imhub_forward_backlog gauge
imhub_forward_backlog{app="1400000000"} 12
imhub_forward_backlog{app="1400000001"} 3
# a comment of no kind
imhub_forward_lag_seconds{app="1400000000"} 2.5e-01
imhub_forward_dead_letters{app="1400000000"} 0
imhub_forward_spooled 4
imhub_forward_total{app="1400000000",result="delivered"} 40
imhub_forward_total{app="1400000000",result="retried"} 7
imhub_forward_total{app="1400000001",result="delivered"} 900
go_gc_duration_seconds{quantile="0.5"} NaN
http_request_duration_seconds_bucket{le="+Inf"} +Inf
some_gauge -Inf 1700000000000
`;

test('parseMetrics reads names, labels and values, and skips comments', () => {
  const s = parseMetrics(sample);
  assert.equal(s.length, 11);
  assert.deepEqual(s[0], { name: 'imhub_forward_backlog', labels: { app: '1400000000' }, value: 12 });
  assert.equal(s[2].value, 0.25);
  assert.deepEqual(s[4], { name: 'imhub_forward_spooled', labels: {}, value: 4 });
  assert.deepEqual(s[6].labels, { app: '1400000000', result: 'retried' });
  assert.ok(Number.isNaN(s[8].value));
  assert.equal(s[9].value, Infinity);
  assert.equal(s[9].labels.le, '+Inf');
  assert.equal(s[10].value, -Infinity, 'a timestamp after the value is ignored');
});

test('parseMetrics unescapes label values', () => {
  const [s] = parseMetrics('m{a="say \\"hi\\"",b="back\\\\slash",c="two\\nlines",d="{x=\\"1\\",y}"} 1\n');
  assert.deepEqual(s.labels, { a: 'say "hi"', b: 'back\\slash', c: 'two\nlines', d: '{x="1",y}' });
});

test('parseMetrics takes odd but valid spacing, CRLF and a trailing comma', () => {
  const s = parseMetrics('  m{ a = "1" , b="2", }   7  \r\nn\t3\r\n');
  assert.deepEqual(s, [{ name: 'm', labels: { a: '1', b: '2' }, value: 7 }, { name: 'n', labels: {}, value: 3 }]);
});

test('parseMetrics skips what it cannot read, and never throws', () => {
  const cases = [
    'm{a="unterminated} 1',
    'm{a=1} 1',
    'm{="x"} 1',
    'm 1.2.3',
    'm',
    'm{a="1"}',
    '1m 2',
    'm{a="1"}2',
    '<!doctype html><html><body>Not here</body></html>',
    'm x',
  ];
  for (const c of cases) assert.deepEqual(parseMetrics(c), [], c);
  assert.deepEqual(parseMetrics(''), []);
  assert.deepEqual(parseMetrics(undefined), []);
  assert.equal(parseMetrics('bad{\nok 1\n').length, 1, 'one bad line spoils no other');
});

test('forwardReading picks the app\'s series, or null when the hub does not forward for it', () => {
  const s = parseMetrics(sample);
  assert.deepEqual(forwardReading(s, '1400000000'), { backlog: 12, lag: 0.25, dead: 0, delivered: 40, spooled: 4 });
  assert.deepEqual(forwardReading(s, '1400000001'), { backlog: 3, lag: null, dead: null, delivered: 900, spooled: 4 });
  assert.equal(forwardReading(s, '1400000009'), null, 'another app\'s series');
  assert.equal(forwardReading(s, ''), null);
  assert.equal(forwardReading(parseMetrics('imhub_forward_spooled 0\ngo_goroutines 9\n'), '1400000000'), null, 'the spool alone is not forwarding');
  assert.equal(forwardReading([], '1400000000'), null);
  const odd = forwardReading(parseMetrics('imhub_forward_backlog{app="1"} NaN\nimhub_forward_lag_seconds{app="1"} +Inf\n'), '1');
  assert.equal(odd.backlog, null, 'NaN is not a number to show');
  assert.equal(odd.lag, null);
});

test('perSecond is the counter\'s rate, across a reset too', () => {
  assert.equal(perSecond(40, 70, 3), 10);
  assert.equal(perSecond(40, 40, 3), 0);
  assert.equal(perSecond(900, 6, 3), 2, 'the counter restarted from zero');
  assert.equal(perSecond(null, 6, 3), null);
  assert.equal(perSecond(1, 6, 0), null);
  assert.equal(perSecond(1, null, 3), null);
});

const r = (backlog, lag, dead, delivered) => ({ backlog, lag, dead, delivered, spooled: null });

test('forwardView warns when the backlog or lag grows, the backlog is stuck, or dead letters appear', () => {
  const cases = [
    { name: 'first reading, all quiet', prev: null, cur: r(0, 0.05, 0, 0), want: [] },
    { name: 'first reading with a backlog: nothing to compare yet', prev: null, cur: r(5, 0, 0, 0), want: [] },
    { name: 'draining', prev: r(10, 2, 0, 100), cur: r(4, 3, 0, 106), want: ['lag growing'] },
    { name: 'steady and delivering', prev: r(3, 0.2, 0, 100), cur: r(3, 0.2, 0, 130), want: [] },
    { name: 'growing', prev: r(1, 0.1, 0, 5), cur: r(4, 0.1, 0, 5), want: ['backlog growing'] },
    { name: 'stuck', prev: r(4, 0.1, 0, 5), cur: r(4, 0.1, 0, 5), want: ['backlog not draining'] },
    { name: 'small lag growing', prev: r(0, 0.01, 0, 5), cur: r(0, 0.5, 0, 6), want: [] },
    { name: 'lag growing', prev: r(0, 1, 0, 5), cur: r(0, LAG_WARN + 1, 0, 6), want: ['lag growing'] },
    { name: 'dead letters', prev: null, cur: r(0, 0, 1, 0), want: ['1 dead letter: see hub forward-dead'] },
    { name: 'empty again', prev: r(4, 9, 0, 5), cur: r(0, 9, 0, 9), want: [] },
  ];
  for (const c of cases) {
    const v = forwardView(c.prev, c.cur, 3);
    assert.deepEqual(v.warnings, c.want, c.name);
    assert.equal(v.warn, c.want.length > 0, c.name);
  }
  assert.equal(forwardView(null, null, 3), null);
  assert.equal(forwardView(r(0, 0, 0, 10), r(0, 0, 0, 40), 3).rate, 10);
  assert.equal(forwardView(null, r(0, 0, 0, 40), 3).rate, null);
});

test('seconds reads like a person would say it', () => {
  assert.equal(seconds(null), '–');
  assert.equal(seconds(0.0421), '42 ms');
  assert.equal(seconds(2.25), '2.3 s');
  assert.equal(seconds(600), '10 min');
  assert.equal(seconds(36000), '10.0 h');
});

test('forwardPanel shows each number, the warnings, and escapes everything', () => {
  const v = forwardView(r(4, 2, 0, 5), { backlog: 9, lag: 2, dead: 2, delivered: 5, spooled: 3 }, 3);
  const html = forwardPanel(v, '<b>"x"</b>');
  assert.match(html, /<div data-key="backlog" class="bad"><dt>backlog<\/dt><dd>9<\/dd>/);
  assert.match(html, /<div data-key="dead" class="bad">/);
  assert.match(html, /<div data-key="lag"><dt>/, 'a lag that did not grow is not marked');
  assert.match(html, /<dt>lag<\/dt><dd>2\.0 s<\/dd>/);
  assert.match(html, /<dt>dead letters<\/dt><dd>2<\/dd>/);
  assert.match(html, /<dt>delivered\/s<\/dt><dd>0\.0<\/dd>/);
  assert.match(html, /spooled \(all apps\)<\/dt><dd>3</);
  assert.match(html, /class="fwd-warning">2 dead letters: see hub forward-dead · backlog growing</);
  assert.match(html, /app &lt;b&gt;&quot;x&quot;&lt;\/b&gt;'s backend/);
  assert.doesNotMatch(html, /<b>/);
  const quiet = forwardPanel(forwardView(null, r(0, null, 0, 0), 3), '1');
  assert.doesNotMatch(quiet, /fwd-warning|spooled/);
  assert.match(quiet, /<dt>lag<\/dt><dd>–<\/dd>/);
  assert.doesNotMatch(quiet, /class="bad"/);
  assert.match(forwardPanel(forwardView(null, r(0, 0, 0, 0), 3), '1'), /<dt>lag<\/dt><dd>–<\/dd>/, 'no lag before the first delivery');
  assert.match(forwardPanel(forwardView(null, r(0, 0, 0, 1), 3), '1'), /<dt>lag<\/dt><dd>0 ms<\/dd>/);
  assert.match(quiet, /<dt>delivered\/s<\/dt><dd>–<\/dd>/);
});
