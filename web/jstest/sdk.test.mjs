// The browser client against real hub processes and a real redis-server:
// node --experimental-websocket --test web/jstest (make test).
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthError, Hub, HubError } from '../sdk/imhub.js';
import { Procs, groupMessage, seqs, sleep, token, until } from './hubprocs.mjs';

if (typeof WebSocket !== 'function') {
  throw new Error('this node has no WebSocket: run node with --experimental-websocket (Node 20) or use Node 22 (make test does)');
}

const procs = new Procs();
let redis;
before(async () => {
  redis = await procs.redis();
});
after(() => procs.stop());
// Clients a failed test left open would keep node running.
const open = new Set();
afterEach(() => open.forEach((h) => h.close()));

const fast = { minDelay: 50, maxDelay: 400, timeout: 3000 };

function client(addr, getToken, more = {}) {
  const hub = new Hub(`ws://${addr}/ws`, { getToken, ...fast, ...more });
  open.add(hub);
  const closes = [];
  hub.on('disconnected', ({ code }) => closes.push(code));
  hub.closes = closes;
  return hub;
}

const subscribed = (sub) => new Promise((r) => sub.on('subscribed', r));

test('after a SIGKILL of its node, the client reconnects and gets what it missed, once, in order', async () => {
  const a = await procs.hub({ redis, node: 'hub-a' });
  const b = await procs.hub({ redis, node: 'hub-b' });
  const hub = client(a.addr, () => token('kill', { groups: ['*'] }));
  const g = hub.subscribe('group:K');
  const got = seqs(g);
  const nodes = [];
  hub.on('connected', ({ node }) => nodes.push(node));
  const ready = subscribed(g);
  hub.connect();
  await ready;
  const acked = [];
  for (let i = 1; i <= 5; i++) if (await groupMessage(a.addr, 'K', i)) acked.push(i);
  await until(() => got.length === 5, 'the first events');

  await procs.kill(a);
  await until(() => hub.state === 'disconnected', 'the client to notice');
  for (let i = 6; i <= 15; i++) if (await groupMessage(b.addr, 'K', i)) acked.push(i);
  const a2 = await procs.hub({ redis, addr: a.addr, node: 'hub-a2' });
  await until(() => got.length >= acked.length, 'the events posted while away');
  for (let i = 16; i <= 20; i++) if (await groupMessage(a2.addr, 'K', i)) acked.push(i);
  await until(() => got.length >= acked.length, 'live events again');
  await sleep(200);
  assert.equal(acked.length, 20);
  assert.deepEqual(got, acked, 'every event once, in order');
  assert.deepEqual(nodes, ['hub-a', 'hub-a2']);
  hub.close();
  await procs.kill(b);
  await procs.kill(a2);
});

test('a token is refreshed in band before it expires: the connection stays', async () => {
  const p = await procs.hub({ redis });
  let calls = 0;
  const hub = client(p.addr, () => {
    calls++;
    return token('fresh', { ttl: 4, groups: ['*'] });
  });
  const g = hub.subscribe('group:R');
  const got = seqs(g);
  const ready = subscribed(g);
  hub.connect();
  await ready;
  // Two tokens' lives: without refresh the hub closes with 4002 after
  // the first.
  await sleep(8000);
  assert.ok(calls >= 3, `getToken called ${calls} times`);
  assert.deepEqual(hub.closes, [], 'never disconnected');
  assert.equal(hub.state, 'connected');
  assert.ok(await groupMessage(p.addr, 'R', 1));
  await until(() => got.length === 1, 'an event on the refreshed connection');
  hub.close();
  await procs.kill(p);
});

test('closed with 4002, the client reconnects with a fresh token and misses nothing; getToken calls are shared', async () => {
  const p = await procs.hub({ redis });
  let calls = 0;
  let expired;
  const closed4002 = new Promise((r) => (expired = r));
  const hub = client(p.addr, async () => {
    calls++;
    if (calls === 1) return token('late', { ttl: 2, groups: ['*'] });
    // The refresh ahead of exp gets its token only after the hub closed
    // the connection: the reconnect waits for this same call.
    await closed4002;
    await sleep(100);
    return token('late', { groups: ['*'] });
  });
  hub.on('disconnected', ({ code }) => code === 4002 && expired());
  const g = hub.subscribe('group:E');
  const got = seqs(g);
  const ready = subscribed(g);
  hub.connect();
  await ready;
  const acked = [];
  if (await groupMessage(p.addr, 'E', 1)) acked.push(1);
  await closed4002;
  for (let i = 2; i <= 6; i++) if (await groupMessage(p.addr, 'E', i)) acked.push(i);
  await until(() => hub.state === 'connected', 'a new connection');
  await until(() => got.length >= 6, 'the events of the outage');
  assert.deepEqual(got, acked);
  assert.deepEqual(hub.closes, [4002]);
  assert.equal(calls, 2, 'the reconnect shared the refresh in flight');
  hub.close();
  await procs.kill(p);
});

test('a token refused again after a fresh one: the client stops with AuthError and does not reconnect', async () => {
  const p = await procs.hub({ redis });
  let calls = 0;
  let sockets = 0;
  class Counted extends WebSocket {
    constructor(url) {
      super(url);
      sockets++;
    }
  }
  const hub = client(p.addr, () => {
    calls++;
    return token('forged', { secret: 'another-secret-another-secret-another-secret' });
  }, { WebSocket: Counted });
  const errors = [];
  hub.on('error', (e) => errors.push(e));
  hub.connect();
  await until(() => hub.state === 'closed', 'the client to stop');
  await sleep(500);
  assert.deepEqual(hub.closes, [4001, 4001]);
  assert.equal(calls, 2);
  assert.equal(sockets, 2);
  assert.ok(hub.error instanceof AuthError);
  assert.equal(hub.error.code, 'token_invalid');
  assert.equal(hub.error.closeCode, 4001);
  assert.equal(errors.at(-1), hub.error);
});

test('an offset older than history: gap, then live events; offsets persist across a reload', async () => {
  // A history of 3 and no hold: a busy channel would otherwise keep the
  // last 10 s of events whatever their number.
  const p = await procs.hub({ redis, args: ['-history-size', '3', '-history-hold', '0'] });
  const store = new Map();
  const persist = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  const getToken = () => token('reload', { groups: ['*'] });

  // A first page: two events, then the page goes away.
  const first = client(p.addr, getToken, { persist });
  const got1 = seqs(first.subscribe('group:H'));
  const ready = subscribed(first.subscribe('group:H'));
  first.connect();
  await ready;
  assert.ok(await groupMessage(p.addr, 'H', 1));
  assert.ok(await groupMessage(p.addr, 'H', 2));
  await until(() => got1.length === 2, 'the first page to get two events');
  first.close(); // as pagehide does: offsets are saved

  // Within history: the reloaded page continues where it was.
  assert.ok(await groupMessage(p.addr, 'H', 3));
  const second = client(p.addr, getToken, { persist });
  const s2 = second.subscribe('group:H');
  const got2 = seqs(s2);
  const gaps2 = [];
  s2.on('gap', (g) => gaps2.push(g));
  second.connect();
  await until(() => got2.length === 1, 'the event posted between the pages');
  assert.deepEqual(got2, [3]);
  assert.deepEqual(gaps2, []);
  second.close();

  // Beyond history: a gap, then live events from the current offset.
  for (let i = 4; i <= 9; i++) assert.ok(await groupMessage(p.addr, 'H', i));
  const third = client(p.addr, getToken, { persist });
  const s3 = third.subscribe('group:H');
  const got3 = seqs(s3);
  const gap = new Promise((r) => s3.on('gap', r));
  third.connect();
  const { offset } = await gap;
  assert.match(offset, /^9:/, 'live from the latest offset');
  assert.ok(await groupMessage(p.addr, 'H', 10));
  await until(() => got3.length === 1, 'the live event after the gap');
  assert.deepEqual(got3, [10]);
  third.close();
  await procs.kill(p);
});

test('a channel the token does not grant: an error on the subscription, not asked again', async () => {
  const p = await procs.hub({ redis });
  const hub = client(p.addr, () => token('narrow', { groups: ['G1'] }));
  const sub = hub.subscribe('group:G2');
  const err = new Promise((r) => sub.on('error', r));
  hub.connect();
  const e = await err;
  assert.ok(e instanceof HubError);
  assert.equal(e.code, 'forbidden');
  assert.equal(e.channel, 'group:G2');
  assert.ok(!e.temporary);
  assert.ok(!hub.subscriptions().includes(sub), 'the subscription ended');
  assert.equal(hub.state, 'connected');
  hub.close();
  await procs.kill(p);
});

// PROTOCOL §3's presence op, through two nodes.
test('presence: who is connected to a channel, across nodes', async () => {
  const a = await procs.hub({ redis, node: 'pa' });
  const b = await procs.hub({ redis, node: 'pb' });
  const mk = (addr, sub) => client(addr, () => token(sub, { groups: ['P'] }));
  const x = mk(a.addr, 'xavier');
  const y1 = mk(b.addr, 'yara');
  const y2 = mk(a.addr, 'yara');
  const all = [x, y1, y2];
  for (const h of all) {
    const r = subscribed(h.subscribe('group:P'));
    h.connect();
    await r;
  }
  try {
    let users;
    await until(async () => {
      users = await x.presence('group:P');
      return users.xavier === 1 && users.yara === 2;
    }, 'presence to count both users', 5000).catch((e) => {
      throw new Error(`${e.message}: last answer ${JSON.stringify(users)}`);
    });
    await assert.rejects(x.presence('group:OTHER'), (e) => e instanceof HubError && e.code === 'forbidden');
  } finally {
    all.forEach((h) => h.close());
    await procs.kill(a);
    await procs.kill(b);
  }
});
