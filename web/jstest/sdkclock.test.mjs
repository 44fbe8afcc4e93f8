// The browser client's timing, with its clock, timers and randomness in
// the test's hands: the backoff, the reaction to `online` and to sleep,
// the pings. Connections that fail are real (a port nothing listens on);
// where the test must speak for the hub, a socket it holds stands in, and
// the hub's side of those exchanges is tested in sdk.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthError, Hub, HubError, TimeoutError, newer } from '../sdk/imhub.js';
import { freePort, sleep, token, until } from './hubprocs.mjs';
import { Clock, Held, TICK, held, socket } from './fakes.mjs';

const tok = () => token('u');
const flush = () => sleep(0);
// settled resolves to {v} or {e} once p settles, or to 'pending' if it has not soon.
const settled = (p) => Promise.race([p.then((v) => ({ v }), (e) => ({ e })), sleep(50).then(() => 'pending')]);
// jwt makes an unsigned token: the client reads its claims, and Held does not check it.
const jwt = (c) => 'h.' + Buffer.from(JSON.stringify({ sub: 'u', ...c })).toString('base64url') + '.s';

test('newer orders offsets within an epoch; another epoch is a new stream', () => {
  assert.ok(newer('5:e', undefined));
  assert.ok(newer('6:e', '5:e'));
  assert.ok(!newer('5:e', '5:e'));
  assert.ok(!newer('4:e', '10:e'), 'numbers, not strings');
  assert.ok(newer('1:f', '9:e'), 'a new epoch');
  assert.ok(newer('1:ab12', '0:run.1700000000000'), 'the first event after an empty channel');
  assert.ok(!newer('3:a:b', '3:a:b'), 'an epoch with a colon');
});

test('backoff: each wait lies between minDelay and the doubling cap, set by the jitter', async () => {
  const clock = new Clock();
  const port = await freePort(); // nothing listens: each connection fails
  const rs = [0, 0.5, 0.99, 0.25, 0.75, 0.1, 0.9];
  let i = 0;
  const hub = new Hub(`ws://127.0.0.1:${port}/ws`, {
    getToken: tok, minDelay: 100, maxDelay: 3000, now: clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout,
    random: () => rs[i++ % rs.length],
  });
  const closes = [];
  hub.on('disconnected', ({ code }) => closes.push(code));
  hub.connect();
  const waits = [];
  for (let n = 1; n <= rs.length; n++) {
    await until(() => closes.length === n && clock.waits().length === 1, `retry ${n} to be scheduled`);
    const [w] = clock.waits();
    const cap = Math.min(3000, 100 * 2 ** n);
    assert.ok(w >= 100 && w <= cap, `wait ${n} is ${w}, want 100..${cap}`);
    assert.equal(w, 100 + rs[n - 1] * (cap - 100), `wait ${n} is set by the jitter`);
    waits.push(w);
    clock.advance(w);
    await until(() => closes.length === n + 1, `connection ${n + 1} to fail`);
  }
  assert.equal(hub.state, 'disconnected');
  assert.equal(Math.max(...waits), 100 + 0.9 * 2900, 'capped at maxDelay');
  hub.close();
  assert.deepEqual(clock.waits(), [], 'close cancels the retry');
});

test('online during a backoff reconnects at once, and starts no second loop', async () => {
  const clock = new Clock();
  const port = await freePort();
  const window = new EventTarget();
  let sockets = 0;
  class Counted extends WebSocket {
    constructor(url) {
      super(url);
      sockets++;
    }
  }
  const hub = new Hub(`ws://127.0.0.1:${port}/ws`, {
    getToken: tok, minDelay: 1000, maxDelay: 60000, now: clock.now, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout,
    random: () => 0.5, window, WebSocket: Counted,
  });
  let lost = 0;
  hub.on('disconnected', () => lost++);
  hub.connect();
  await until(() => lost === 1 && clock.waits().length === 1, 'a backoff');
  assert.equal(sockets, 1);

  window.dispatchEvent(new Event('online'));
  assert.deepEqual(clock.waits(), [], 'the backoff was cancelled');
  window.dispatchEvent(new Event('online')); // while connecting: nothing more
  await until(() => sockets === 2, 'a connection at once');
  await until(() => lost === 2 && clock.waits().length === 1, 'the new connection to fail');
  assert.equal(sockets, 2);
  assert.equal(clock.waits().length, 1, 'one loop: one retry pending');

  // Long after the first backoff would have ended: still one loop.
  clock.advance(clock.waits()[0]);
  await until(() => lost === 3 && clock.waits().length === 1, 'the next retry');
  assert.equal(sockets, 3);
  hub.close();
});

test('a silent connection is pinged after pingInterval and dropped when no answer comes within timeout', async () => {
  const { clock, hub } = held();
  hub.connect();
  const ws = await socket(1);
  ws.open();
  clock.advance(24000);
  assert.deepEqual(ws.sent.filter((f) => f.op === 'ping'), [], 'not yet silent');
  clock.advance(2000);
  assert.equal(ws.sent.filter((f) => f.op === 'ping').length, 1, 'pinged once silent for pingInterval');
  ws.recv({ op: 'pong' });
  clock.advance(20000);
  assert.equal(hub.state, 'connected', 'the pong kept it');
  clock.advance(6000); // silent again: a second ping, unanswered
  assert.equal(ws.sent.filter((f) => f.op === 'ping').length, 2);
  clock.advance(9000);
  assert.equal(hub.state, 'connected');
  const lost = [];
  hub.on('disconnected', (d) => lost.push(d.code));
  clock.advance(2000);
  assert.deepEqual(lost, [1006], 'dead after pingInterval and timeout');
  clock.advance(1000);
  (await socket(2)).open();
  assert.equal(hub.state, 'connected');
  hub.close();
});

test('after sleep (the clock jumped), a connection silent too long is made again at once', async () => {
  const document = Object.assign(new EventTarget(), { visibilityState: 'visible' });
  const { clock, hub } = held({ document });
  const lost = [];
  hub.on('disconnected', (d) => lost.push(d.code));
  hub.connect();
  (await socket(1)).open();
  clock.t += 10 * 60 * 1000; // the lid was closed; no timer ran
  clock.advance(TICK);
  assert.deepEqual(lost, [1006], 'dropped at the first check after waking');
  clock.advance(100); // within minDelay
  (await socket(2)).open();
  assert.equal(hub.state, 'connected');

  // Shown again soon after: the connection is only checked.
  clock.advance(5000);
  document.dispatchEvent(new Event('visibilitychange'));
  const ws = Held.all[1];
  assert.equal(ws.sent.filter((f) => f.op === 'ping').length, 1, 'checked with a ping');
  assert.equal(Held.all.length, 2);
  hub.close();
});

test('4010: the client stops and does not reconnect', async () => {
  const { clock, hub } = held();
  const errors = [];
  hub.on('error', (e) => errors.push(e));
  hub.connect();
  const ws = await socket(1);
  ws.open();
  ws.drop(4010, 'disconnected by the server API');
  assert.equal(hub.state, 'closed');
  assert.ok(hub.error instanceof AuthError);
  assert.equal(hub.error.code, 'disconnected');
  assert.deepEqual(errors, [hub.error]);
  clock.advance(120000);
  await flush();
  assert.equal(Held.all.length, 1);
});

test('replayed events are delivered after the answer to since, each once, in order', async () => {
  const { clock, hub } = held();
  const sub = hub.subscribe('group:G');
  const got = [];
  const gaps = [];
  sub.on('event', (ev, offset) => got.push(offset));
  sub.on('gap', (g) => gaps.push(g.offset));
  hub.connect();
  let ws = await socket(1);
  ws.open();
  const first = ws.sent.find((f) => f.op === 'subscribe' && f.channel === 'group:G');
  assert.equal(first.since, undefined);
  ws.recv({ op: 'subscribed', channel: 'group:G', offset: '2:e', id: first.id });
  ws.recv({ op: 'event', channel: 'group:G', offset: '3:e', event: {} });
  ws.recv({ op: 'event', channel: 'group:G', offset: '4:e', event: {} });
  ws.drop(1006);
  clock.advance(200);

  ws = await socket(2);
  ws.open();
  const again = ws.sent.find((f) => f.op === 'subscribe' && f.channel === 'group:G');
  assert.equal(again.since, '4:e', 'since the last event delivered');
  ws.recv({ op: 'event', channel: 'group:G', offset: '7:e', event: {} }); // live, before the answer: replayed after it
  ws.recv({ op: 'subscribed', channel: 'group:G', offset: '3:e', id: 999 }); // not the answer to ours
  ws.recv({ op: 'subscribed', channel: 'group:G', offset: '6:e', recovered: true, id: again.id });
  for (const o of ['4:e', '5:e', '6:e', '7:e', '7:e', '8:e']) ws.recv({ op: 'event', channel: 'group:G', offset: o, event: {} });
  assert.deepEqual(got, ['3:e', '4:e', '5:e', '6:e', '7:e', '8:e']);
  assert.deepEqual(gaps, []);

  // The stream starts anew on the hub: a gap, then the new epoch.
  ws.recv({ op: 'subscribed', channel: 'group:G', offset: '0:f', recovered: false });
  ws.recv({ op: 'event', channel: 'group:G', offset: '1:f', event: {} });
  assert.deepEqual(gaps, ['0:f']);
  assert.deepEqual(got.slice(-1), ['1:f']);
  assert.equal(sub.offset, '1:f');
  hub.close();
});

test('subscribe with since starts a new stream there: the kept events after it first; an offset kept in persist comes first', async () => {
  assert.throws(() => held().hub.subscribe('app', { since: 3 }), TypeError);
  const { hub } = held();
  const sub = hub.subscribe('app', { since: '0:e' });
  assert.equal(hub.subscribe('app', { since: '9:e' }), sub, 'one subscription per channel; later options are ignored');
  const got = [];
  sub.on('event', (ev, offset) => got.push(offset));
  hub.connect();
  const ws = await socket(1);
  ws.open();
  const f = ws.sent.find((x) => x.op === 'subscribe' && x.channel === 'app');
  assert.equal(f.since, '0:e');
  ws.recv({ op: 'subscribed', channel: 'app', offset: '2:e', recovered: true, id: f.id });
  for (const o of ['1:e', '2:e', '3:e']) ws.recv({ op: 'event', channel: 'app', offset: o, event: {} });
  assert.deepEqual(got, ['1:e', '2:e', '3:e']);
  hub.close();

  const store = new Map([['imhub:ws://hub.test/ws:1400000000:u', JSON.stringify({ app: '7:e' })]]);
  const persist = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const kept = held({ persist }).hub;
  kept.subscribe('app', { since: '0:e' });
  kept.connect();
  const ws2 = await socket(1);
  ws2.open();
  assert.equal(ws2.sent.find((x) => x.op === 'subscribe' && x.channel === 'app').since, '7:e');
  kept.close();
});

test('a request waits for a connection, and is answered by id, refused with HubError, or given up with TimeoutError', async () => {
  const { clock, hub } = held();
  const early = hub.presence('group:A'); // before the connection: sent once connected
  hub.connect();
  const ws = await socket(1);
  ws.open();
  const asked = ws.sent.filter((f) => f.op === 'presence');
  assert.deepEqual(asked.map((f) => f.channel), ['group:A']);
  ws.recv({ op: 'presence', channel: 'group:A', users: { jared: 2 }, id: asked[0].id });
  assert.deepEqual(await early, { jared: 2 });

  const refused = hub.presence('group:B');
  const b = ws.sent.at(-1);
  ws.recv({ op: 'error', code: 'forbidden', message: 'not yours', channel: 'group:B', id: b.id });
  await assert.rejects(refused, (e) => e instanceof HubError && !(e instanceof TimeoutError) && e.code === 'forbidden' && e.channel === 'group:B');

  const unanswered = hub.presence('group:C');
  clock.advance(10000 + 2 * TICK);
  await assert.rejects(unanswered, (e) => e instanceof TimeoutError && e.code === 'timeout');
  hub.close();
});

test('a clock past the token\'s exp does not refresh every second: the refresh follows the token\'s own life', async () => {
  const T = 1_700_000_000; // the Clock's start, s
  let calls = 0;
  // Issued, by the hub's clock, an hour before the local clock: it runs ahead.
  const { clock, hub } = held({ getToken: () => (calls++, jwt({ iat: T - 3600, exp: T - 3600 + 600 })), pingInterval: 3600000 });
  hub.connect();
  const ws = await socket(1);
  ws.open();
  const refreshes = () => ws.sent.filter((f) => f.op === 'refresh');
  for (let s = 0; s < 60; s++) {
    clock.advance(TICK);
    await flush();
  }
  assert.equal(calls, 1, 'no refresh in the first minute of a ten-minute token');
  assert.equal(refreshes().length, 0);
  clock.advance(480 * 1000); // nine minutes in: a minute before its life ends
  await flush();
  assert.equal(calls, 2);
  assert.equal(refreshes().length, 1);
  ws.recv({ op: 'refreshed', id: refreshes()[0].id });
  for (let s = 0; s < 60; s++) {
    clock.advance(TICK);
    await flush();
  }
  assert.equal(refreshes().length, 1, 'the fresh token is as skewed, and kept as long');
  hub.close();
});

test('a token without iat whose exp the local clock has passed is refreshed at most every 5 s', async () => {
  const T = 1_700_000_000;
  const { clock, hub } = held({ getToken: () => jwt({ exp: T - 60 }) });
  hub.connect();
  const ws = await socket(1);
  ws.open();
  const refreshes = () => ws.sent.filter((f) => f.op === 'refresh');
  for (let s = 0; s < 30; s++) {
    clock.advance(TICK);
    await flush();
    for (const f of refreshes()) if (!f.answered) ws.recv({ op: 'refreshed', id: f.id }), (f.answered = true);
  }
  assert.ok(refreshes().length >= 1 && refreshes().length <= 6, `${refreshes().length} refreshes in 30 s`);
  hub.close();
});

test('a getToken that never answers is given up after timeout, and asked again after a backoff', async () => {
  let calls = 0;
  const { clock, hub } = held({ getToken: () => (++calls === 1 ? new Promise(() => {}) : tok()) });
  const errors = [];
  hub.on('error', (e) => errors.push(e));
  hub.connect();
  await flush();
  clock.advance(9000);
  await flush();
  assert.equal(hub.state, 'connecting');
  clock.advance(1000 + TICK);
  await flush();
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof TimeoutError && errors[0].code === 'timeout', String(errors[0]));
  assert.equal(hub.state, 'disconnected');
  clock.advance(1000);
  (await socket(1)).open();
  assert.equal(hub.state, 'connected');
  assert.equal(calls, 2);
  hub.close();
});

test('a request made while the client is closed is refused at once; one made before connect is given up after timeout', async () => {
  let { clock, hub } = held();
  const early = hub.presence('group:A'); // connect is never called
  clock.advance(10000 + 2 * TICK);
  const e1 = await settled(early);
  assert.ok(e1.e instanceof TimeoutError, 'before connect: given up after timeout, got ' + JSON.stringify(e1));

  hub.connect();
  (await socket(1)).open();
  hub.close();
  const e2 = await settled(hub.presence('group:A'));
  assert.ok(e2.e instanceof HubError && e2.e.code === 'closed', 'after close: refused at once, got ' + JSON.stringify(e2));

  ({ clock, hub } = held());
  hub.connect();
  const ws = await socket(1);
  ws.open();
  const pending = hub.presence('group:A');
  ws.drop(4010, 'disconnected by the server API');
  const e3 = await settled(pending);
  assert.ok(e3.e instanceof HubError && e3.e.code === 'closed', 'pending at 4010: refused, got ' + JSON.stringify(e3));
  const e4 = await settled(hub.presence('group:A'));
  assert.ok(e4.e instanceof HubError && e4.e.code === 'closed', 'after 4010: refused at once, got ' + JSON.stringify(e4));
});

test('close and connect from a listener during the once-a-second check leave one check loop', async () => {
  const { clock, hub } = held();
  hub.connect();
  (await socket(1)).open();
  let again = true;
  hub.on('disconnected', () => {
    if (!again) return;
    again = false;
    hub.close();
    hub.connect();
  });
  clock.advance(26000); // silent: pinged
  clock.advance(10000); // no answer: the check drops it, at the end of this advance
  assert.equal(again, false);
  assert.equal(clock.ticks(), 1, 'one loop');
  (await socket(2)).open();
  clock.advance(5000);
  assert.equal(hub.state, 'connected', 'the connection the listener made is kept');
  assert.equal(Held.all.length, 2);
  assert.equal(clock.ticks(), 1);
  hub.close();
  assert.equal(clock.ticks(), 0);
});

test('offsets persisted in a shared storage resume only for the same user and app', async () => {
  const store = new Map();
  const persist = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const run = async (user, app) => {
    const { hub } = held({ persist });
    hub.subscribe('group:G');
    hub.connect();
    const ws = await socket(1);
    ws.open(user, app);
    return { hub, ws, sub: ws.sent.find((f) => f.op === 'subscribe' && f.channel === 'group:G') };
  };
  let { hub, ws, sub } = await run('alice');
  assert.equal(sub.since, undefined);
  ws.recv({ op: 'subscribed', channel: 'group:G', offset: '5:e', id: sub.id });
  hub.close();

  ({ hub, ws, sub } = await run('bob'));
  assert.equal(sub.since, undefined, "alice's offset is not resumed for bob");
  ws.recv({ op: 'subscribed', channel: 'group:G', offset: '9:e', id: sub.id });
  hub.close();
  ({ hub, sub } = await run('alice', '1400000001'));
  assert.equal(sub.since, undefined, 'nor for alice of another app');
  hub.close();
  ({ hub, sub } = await run('alice'));
  assert.equal(sub.since, '5:e', 'alice resumes her own');
  hub.close();
});

test('a request larger than the hub takes is refused before sending; after 1009 pending requests are refused, not sent again', async () => {
  const { clock, hub } = held();
  hub.connect();
  const ws = await socket(1);
  ws.open();
  const big = await settled(hub.presence('group:' + 'x'.repeat(70000)));
  assert.ok(big.e instanceof HubError && big.e.code === 'too_large', 'refused at once, got ' + JSON.stringify(big));
  assert.equal(ws.sent.filter((f) => f.op === 'presence').length, 0, 'not sent');

  const p = hub.presence('group:A');
  ws.drop(1009, 'frame too large');
  const r = await settled(p);
  assert.ok(r.e instanceof HubError && r.e.closeCode === 1009, 'refused with the close, got ' + JSON.stringify(r));
  clock.advance(1000);
  const ws2 = await socket(2);
  ws2.open();
  assert.deepEqual(ws2.sent.filter((f) => f.op === 'presence'), [], 'not sent again');
  hub.close();
});
