// The browser client with an IM login instead of a token (PROTOCOL §7, §8):
// the handshake's query, the in band refresh timed by the UserSig's own
// life, and subscriptions the hub ends (unsubscribed with a reason). The
// test speaks for the hub through Held sockets, on the test's clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { AuthError, Hub, HubError } from '../sdk/imhub.js';
import { Held, TICK, held, socket } from './fakes.mjs';
import { APP, root, sleep, until, userSig } from './hubprocs.mjs';
import { join } from 'node:path';

const T = 1_700_000_000; // the Clock's start, s
const login = (sig, more) => ({ sdkAppID: Number(APP), userID: 'jared', userSig: sig, ...more });
const refreshes = (ws) => ws.sent.filter((f) => f.op === 'refresh');
const flush = () => sleep(0);
const subscribes = (ws) => ws.sent.filter((f) => f.op === 'subscribe').map((f) => f.channel);

// ticks advances the clock by n seconds, one check at a time.
const ticks = (clock, n) => {
  for (let i = 0; i < n; i++) clock.advance(TICK);
};

test('options: exactly one of getToken and userSig, each a function', () => {
  const fn = () => 'x';
  for (const [options, want] of [
    [undefined, /getToken \(a JWT\) or options.userSig \(an IM login\) is required/],
    [{}, /getToken \(a JWT\) or options.userSig \(an IM login\) is required/],
    [{ getToken: fn, userSig: fn }, /give options.getToken or options.userSig, not both/],
    [{ getToken: 'a.b.c', userSig: fn }, /not both/],
    [{ userSig: login('s') }, /options.userSig must be a function/],
    [{ getToken: 'a.b.c' }, /options.getToken must be a function/],
  ]) {
    assert.throws(() => new Hub('ws://hub.test/ws', options), (e) => e instanceof TypeError && want.test(e.message), JSON.stringify(options));
  }
  assert.ok(new Hub('ws://hub.test/ws', { userSig: fn }));
  assert.ok(new Hub('ws://hub.test/ws', { getToken: fn, userSig: undefined }), 'an option given as undefined is not given');
});

test('the IM login goes in the query: sdkappid, userid, usersig, escaped; no token, no protocols', async () => {
  const sig = userSig('jared ü&x', { time: T });
  const { hub } = held({ url: 'ws://hub.test/ws?v=1', userSig: async () => ({ sdkAppID: 1400000000, userID: 'jared ü&x', userSig: sig }) });
  hub.connect();
  const ws = await socket(1);
  const u = new URL(ws.url);
  assert.equal(u.origin + u.pathname, 'ws://hub.test/ws');
  assert.deepEqual([...u.searchParams], [['v', '1'], ['sdkappid', '1400000000'], ['userid', 'jared ü&x'], ['usersig', sig]]);
  assert.ok(!ws.url.includes('token'), ws.url);
  assert.deepEqual(ws.more, [], 'nothing but the URL: a browser sets no header, and no subprotocol carries it');
  assert.match(ws.url, /userid=jared%20%C3%BC%26x&/, 'the user id escaped');
  hub.close();
});

test('a UserSig is refreshed in band a minute before its own end, by TLS.time + TLS.expire, whatever the local clock', async () => {
  // Signed, by the signer's clock, an hour before the local clock: its
  // life, not the local clock, says when it is due.
  const sigs = [userSig('jared', { time: T - 3600, expire: 600 }), userSig('jared', { time: T - 3600, expire: 1200 })];
  let calls = 0;
  const { clock, hub } = held({ userSig: () => login(sigs[Math.min(calls++, 1)]), pingInterval: 3_600_000 });
  hub.connect();
  const ws = await socket(1);
  ws.open('jared');
  ticks(clock, 539);
  assert.equal(calls, 1, 'not due until a minute before the end of its ten minutes');
  ticks(clock, 1);
  assert.equal(calls, 2, 'due 540 s after it came');
  await until(() => refreshes(ws).length === 1, 'the refresh frame');
  const [r] = refreshes(ws);
  assert.deepEqual(Object.keys(r).sort(), ['id', 'op', 'usersig']);
  assert.deepEqual(r, { op: 'refresh', usersig: sigs[1], id: r.id });
  assert.equal(typeof r.id, 'number');
  ws.recv({ op: 'refreshed', expires: T - 3600 + 1200, id: r.id });
  await flush(); // the refresh ends once its answer is taken

  // The fresh one lives twenty minutes: due 1140 s after it came.
  ticks(clock, 1139);
  assert.equal(calls, 2, 'the fresh UserSig is kept for its own life');
  ticks(clock, 1);
  assert.equal(calls, 3);
  await until(() => refreshes(ws).length === 2, 'the second refresh');
  assert.equal(hub.state, 'connected');
  assert.equal(Held.all.length, 1, 'refreshed in band: one connection');
  hub.close();
});

// imLibrarySig signs with the IM's own library, installed by make test in
// .cache/node, its clock set to time (unix seconds).
function imLibrarySig(app, key, user, time, expire) {
  let Api;
  try {
    ({ Api } = createRequire(join(root, '.cache/node/'))('tls-sig-api-v2'));
  } catch (e) {
    throw new Error("the IM's signing library (npm tls-sig-api-v2) is not installed in .cache/node: run make test, which installs it", { cause: e });
  }
  const now = Date.now;
  Date.now = () => time * 1000;
  try {
    return new Api(Number(app), key).genUserSig(user, expire);
  } finally {
    Date.now = now;
  }
}

test("UserSigs of the IM's own signing library (tls-sig-api-v2) are read for their life", async () => {
  // One the library made for hub/auth/testdata/usersig/vectors.json, and
  // one it makes now.
  const vectors = JSON.parse(readFileSync(join(root, 'hub/auth/testdata/usersig/vectors.json'), 'utf8'));
  const v = vectors.find((x) => x.expire === 3600 && !x.userbuf);
  assert.ok(v, 'a vector of an hour');
  const live = { app: APP, user: 'jared', usersig: imLibrarySig(APP, 'a key of the test', 'jared', T - 86400, 7200), expire: 7200 };
  for (const x of [v, live]) {
    let calls = 0;
    const { clock, hub } = held({ userSig: () => (calls++, { sdkAppID: x.app, userID: x.user, userSig: x.usersig }), pingInterval: 86_400_000 });
    hub.connect();
    const ws = await socket(1);
    assert.equal(new URL(ws.url).searchParams.get('usersig'), x.usersig, 'as the library made it');
    ws.open(x.user);
    ticks(clock, x.expire - 61);
    assert.equal(calls, 1, `${x.user}: not yet`);
    ticks(clock, 1);
    assert.equal(calls, 2, `${x.user}: a minute before the end of its ${x.expire} s`);
    await until(() => refreshes(ws).length === 1, 'the refresh frame');
    hub.close();
  }
});

test('expiresAt, when the login gives it, says when the UserSig ends', async () => {
  const sig = userSig('jared', { time: T, expire: 86400 * 180 });
  const { clock, hub } = held({ userSig: () => login(sig, { expiresAt: clock.now() + 300_000 }), pingInterval: 3_600_000 });
  hub.connect();
  const ws = await socket(1);
  ws.open('jared');
  ticks(clock, 239);
  assert.equal(refreshes(ws).length, 0);
  ticks(clock, 1);
  await until(() => refreshes(ws).length === 1, 'the refresh a minute before expiresAt, not at the end of 180 days');
  hub.close();
});

test('a UserSig that does not decode is not refreshed in band: the hub ends it with 4002, and a fresh one reconnects', async () => {
  let calls = 0;
  const { clock, hub } = held({ userSig: () => login(calls++ ? userSig('jared', { time: T }) : 'not-a-usersig'), pingInterval: 3_600_000 });
  hub.connect();
  let ws = await socket(1);
  ws.open('jared');
  ticks(clock, 600);
  assert.equal(calls, 1, 'no life known: no refresh');
  assert.deepEqual(refreshes(ws), []);
  ws.drop(4002, 'expired');
  clock.advance(100);
  ws = await socket(2);
  assert.equal(calls, 2, 'a fresh one for the reconnect');
  assert.equal(new URL(ws.url).searchParams.get('usersig'), userSig('jared', { time: T }));
  ws.open('jared');
  assert.equal(hub.state, 'connected');
  hub.close();
});

test('a refresh the hub refuses is an error event, and tried again after timeout', async () => {
  const { clock, hub } = held({ userSig: () => login(userSig('jared', { time: T, expire: 120 })), pingInterval: 3_600_000 });
  const errors = [];
  hub.on('error', (e) => errors.push(e));
  hub.connect();
  const ws = await socket(1);
  ws.open('jared');
  ticks(clock, 60);
  await until(() => refreshes(ws).length === 1, 'the refresh at half its two minutes');
  ws.recv({ op: 'error', code: 'forbidden', message: 'refresh refused', id: refreshes(ws)[0].id });
  await until(() => errors.length === 1, 'the error event');
  assert.ok(errors[0] instanceof HubError && errors[0].code === 'forbidden');
  ticks(clock, 10);
  await until(() => refreshes(ws).length === 2, 'the refresh again, timeout later');
  assert.equal(hub.state, 'connected');
  hub.close();
});

test('a login without its user, app or UserSig is an error, and asked again after a backoff', async () => {
  let calls = 0;
  const { clock, hub } = held({ userSig: () => (++calls === 1 ? { sdkAppID: APP, userSig: 'x' } : login(userSig('jared', { time: T }))) });
  const errors = [];
  hub.on('error', (e) => errors.push(e));
  hub.connect();
  await until(() => errors.length === 1, 'the error');
  assert.ok(errors[0] instanceof AuthError && errors[0].code === 'no_token', String(errors[0]));
  assert.match(errors[0].message, /userSig gave no \{ sdkAppID, userID, userSig \}/);
  assert.equal(Held.all.length, 0, 'no connection without a login');
  clock.advance(1000);
  (await socket(1)).open('jared');
  assert.equal(hub.state, 'connected');
  assert.equal(calls, 2);
  hub.close();
});

test('4001 twice with a UserSig: a fresh one once, then the client stops', async () => {
  let calls = 0;
  const { clock, hub } = held({ userSig: () => login(userSig('jared', { time: T + calls++ })) });
  hub.connect();
  const first = await socket(1);
  first.drop(4001, 'invalid');
  clock.advance(100);
  const second = await socket(2);
  assert.notEqual(new URL(second.url).searchParams.get('usersig'), new URL(first.url).searchParams.get('usersig'), 'a fresh UserSig');
  second.drop(4001, 'invalid');
  assert.equal(hub.state, 'closed');
  assert.ok(hub.error instanceof AuthError && hub.error.code === 'token_invalid' && hub.error.closeCode === 4001);
  assert.equal(calls, 2);
});

test('a subscription the hub ends with a reason emits removed, is dropped, and is not subscribed again after a reconnect', async () => {
  const store = new Map();
  const persist = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const { clock, hub } = held({ userSig: () => login(userSig('jared', { time: T })), persist });
  const g = hub.subscribe('group:G');
  const d = hub.subscribe('group:D');
  const k = hub.subscribe('group:K');
  const seen = [];
  for (const s of [g, d, k]) {
    s.on('event', (ev) => seen.push(`${s.channel} event ${ev.type}`));
    s.on('removed', (info) => seen.push(`${s.channel} removed ${JSON.stringify(info)}`));
    s.on('error', (e) => seen.push(`${s.channel} error ${e.code}`));
  }
  hub.connect();
  let ws = await socket(1);
  ws.open('jared');
  for (const f of ws.sent.filter((x) => x.op === 'subscribe')) ws.recv({ op: 'subscribed', channel: f.channel, offset: '1:e', id: f.id });
  ws.recv({ op: 'event', channel: 'group:G', offset: '2:e', event: { type: 'group.member.left', group_id: 'G' } });
  ws.recv({ op: 'unsubscribed', channel: 'group:G', reason: 'removed' });
  ws.recv({ op: 'event', channel: 'group:D', offset: '2:e', event: { type: 'group.destroyed', group_id: 'D' } });
  ws.recv({ op: 'unsubscribed', channel: 'group:D', reason: 'destroyed' });
  ws.recv({ op: 'event', channel: 'group:G', offset: '3:e', event: { type: 'group.message.sent' } }); // none should come; none is delivered
  assert.deepEqual(seen, [
    'group:G event group.member.left',
    'group:G removed {"reason":"removed"}',
    'group:D event group.destroyed',
    'group:D removed {"reason":"destroyed"}',
  ]);
  assert.deepEqual(hub.subscriptions().map((s) => s.channel).sort(), ['group:K', 'user:jared']);
  assert.deepEqual(ws.sent.filter((f) => f.op === 'unsubscribe'), [], 'the hub ended them: nothing to send');

  ws.drop(1006);
  clock.advance(200); // the backoff
  ws = await socket(2);
  ws.open('jared');
  assert.deepEqual(subscribes(ws), ['group:K'], 'the removed channels are not subscribed again');
  hub.close(); // saves the offsets
  const saved = JSON.parse(store.get(`imhub:ws://hub.test/ws:${APP}:jared`));
  assert.deepEqual(Object.keys(saved), ['group:K'], 'nor resumed from storage');

  // The app may subscribe again: a new subscription, from the start; the
  // hub decides (forbidden while the user is not a member).
  hub.connect();
  ws = await socket(3);
  ws.open('jared');
  const again = hub.subscribe('group:G');
  assert.notEqual(again, g);
  const f = ws.sent.find((x) => x.op === 'subscribe' && x.channel === 'group:G');
  assert.ok(f, 'subscribed when asked');
  assert.equal(f.since, undefined, 'its offset was forgotten');
  const refused = new Promise((r) => again.on('error', r));
  ws.recv({ op: 'error', code: 'forbidden', message: 'not a member', channel: 'group:G', id: f.id });
  assert.equal((await refused).code, 'forbidden');
  assert.ok(!hub.subscriptions().includes(again));
  hub.close();
});

test('an unasked unsubscribed without a reason (a refreshed credential no longer grants it) is a forbidden error', async () => {
  const { hub } = held();
  const g = hub.subscribe('group:G');
  const got = [];
  g.on('error', (e) => got.push(`error ${e.code}`));
  g.on('removed', () => got.push('removed'));
  hub.connect();
  const ws = await socket(1);
  ws.open();
  ws.recv({ op: 'unsubscribed', channel: 'group:G' });
  assert.deepEqual(got, ['error forbidden']);
  assert.ok(!hub.subscriptions().includes(g));
  // The answer to the app's own unsubscribe is neither.
  const h = hub.subscribe('group:H');
  h.on('removed', () => got.push('removed H'));
  h.unsubscribe();
  ws.recv({ op: 'unsubscribed', channel: 'group:H', id: ws.sent.at(-1).id });
  assert.deepEqual(got, ['error forbidden']);
  hub.close();
});
