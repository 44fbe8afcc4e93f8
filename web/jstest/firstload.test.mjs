// The dashboard's first load against a real hub: keptSince finds where the
// app channel's kept history begins, so that a subscription with that since
// replays every kept event; a hub with none answers ''. node --test web/jstest
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Hub } from '../sdk/imhub.js';
import { keptSince } from '../static/history.js';
import { Procs, groupMessage, seqs, token, until } from './hubprocs.mjs';

if (typeof WebSocket !== 'function') {
  throw new Error('this node has no WebSocket: run node with --experimental-websocket (Node 20) or use Node 22 (make test does)');
}

const procs = new Procs();
after(() => procs.stop());
let hub; // a hub that keeps the last 5 events per channel
before(async () => {
  hub = await procs.hub({ args: ['-history-size', '5'] });
});

// Clients a failed test left open would keep node running.
const open = new Set();
afterEach(() => open.forEach((h) => h.close()));
const admin = (addr) => {
  const h = new Hub(`ws://${addr}/ws`, { getToken: () => token('dash', { admin: true }), minDelay: 50, maxDelay: 400, timeout: 3000 });
  open.add(h);
  return h;
};

test('a channel with no event keeps no history: keptSince answers empty', async () => {
  assert.equal(await keptSince(admin(hub.addr), 'group:Nothing', 3000), '');
});

test('keptSince reaches back to the oldest kept event, and since it every kept event is replayed, then live ones', async () => {
  for (let i = 1; i <= 3; i++) assert.ok(await groupMessage(hub.addr, 'Few', i));
  const few = await keptSince(admin(hub.addr), 'group:Few', 3000);
  assert.match(few, /^0:/, 'nothing trimmed yet: from the start');
  for (let i = 4; i <= 5; i++) assert.ok(await groupMessage(hub.addr, 'Few', i));
  assert.match(await keptSince(admin(hub.addr), 'group:Few', 3000), /^0:/, 'as many as are kept: still from the start');
  assert.ok(await groupMessage(hub.addr, 'Few', 6));
  assert.match(await keptSince(admin(hub.addr), 'group:Few', 3000), /^1:/, 'one more: the first is gone');

  for (let i = 1; i <= 12; i++) assert.ok(await groupMessage(hub.addr, 'Many', i));
  const since = await keptSince(admin(hub.addr), 'group:Many', 3000);
  assert.notEqual(since, '');
  const h = admin(hub.addr);
  const sub = h.subscribe('group:Many', { since });
  const got = seqs(sub);
  const gaps = [];
  sub.on('gap', (g) => gaps.push(g));
  h.connect();
  await until(() => got.length >= 5, 'the kept events');
  assert.deepEqual(got, [8, 9, 10, 11, 12], 'the five kept, oldest first');
  assert.ok(await groupMessage(hub.addr, 'Many', 13));
  await until(() => got.length === 6, 'a live event after them');
  assert.deepEqual(gaps, []);
  h.close();
});

test('keptSince rejects when the hub refuses the channel', async () => {
  const plain = new Hub(`ws://${hub.addr}/ws`, { getToken: () => token('nobody'), timeout: 3000 });
  open.add(plain);
  await assert.rejects(keptSince(plain, 'app', 3000));
});
