// Unit tests of what the dashboard tracks across events: read ticks and
// users' latest status. node --test web/jstest
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Presence, ReadIndex, readCovers } from '../static/track.js';

const item = (ev) => ({ ev, key: ev.id, read: null, merged: false });
const groupMsg = (seq, extra = {}) => item({ id: 'g' + seq, type: 'group.message.sent', group_id: 'G1', from: 'jared', time: 1000, messages: [{ seq }], ...extra });
const c2cMsg = (id, from, to, time) => item({ id, type: 'c2c.message.sent', from, to, time, messages: [{ key: id }] });

test('a group receipt ticks the messages it names, by group, topic and seq', () => {
  const idx = new ReadIndex();
  const m7 = groupMsg(7);
  const m8 = groupMsg(8);
  const other = groupMsg(7, { id: 'other', group_id: 'G2' });
  const topic = groupMsg(7, { id: 'topic', topic_id: 'T' });
  [m7, m8, other, topic].forEach((m) => idx.add(m));

  const r = item({ id: 'r1', type: 'group.message.read', group_id: 'G1', time: 2000, receipts: [{ seq: 7, read: 3, unread: 2 }] });
  assert.deepEqual(idx.apply(r), [m7]);
  assert.deepEqual(m7.read, { count: 3, unread: 2, at: 2000 });
  assert.equal(m8.read, null);
  assert.equal(other.read, null, 'another group');
  assert.equal(topic.read, null, 'a topic of the group');
  assert.ok(r.merged, 'all it names is on hand');

  const same = item({ id: 'r2', type: 'group.message.read', group_id: 'G1', time: 2500, receipts: [{ seq: 7, read: 3, unread: 2 }] });
  assert.deepEqual(idx.apply(same), [], 'nothing new to draw');
  const later = item({ id: 'r3', type: 'group.message.read', group_id: 'G1', time: 3000, receipts: [{ seq: 7, read: 5, unread: 0 }, { seq: 9, read: 1 }] });
  assert.deepEqual(idx.apply(later), [m7]);
  assert.equal(m7.read.count, 5);
  assert.ok(!later.merged, '#9 is not on hand, so the receipt is a line too');
  const late = item({ id: 'r4', type: 'group.message.read', group_id: 'G1', time: 2100, receipts: [{ seq: 7, read: 4 }] });
  assert.deepEqual(idx.apply(late), [], 'an older receipt arriving late changes nothing');
  assert.equal(m7.read.count, 5);

  idx.remove(m7);
  const after = item({ id: 'r5', type: 'group.message.read', group_id: 'G1', time: 4000, receipts: [{ seq: 7, read: 6 }] });
  assert.deepEqual(idx.apply(after), []);
  assert.ok(!after.merged, 'a message no longer kept is not on hand');
  assert.ok(!idx.apply(item({ id: 'r6', type: 'group.message.read', group_id: 'G1', receipts: [] })).length);
});

test('a one-to-one read report ticks what the peer sent the reader up to the read time', () => {
  const idx = new ReadIndex();
  const t0 = 1700000000000;
  const before = c2cMsg('a', 'jared', 'Jonh', t0);
  const sameSecond = c2cMsg('b', 'jared', 'Jonh', t0 + 800);
  const after = c2cMsg('c', 'jared', 'Jonh', t0 + 5000);
  const reply = c2cMsg('d', 'Jonh', 'jared', t0);
  const elsewhere = c2cMsg('e', 'jared', 'mia', t0);
  [before, sameSecond, after, reply, elsewhere].forEach((m) => idx.add(m));

  // Jonh (the reader) reports reading his conversation with jared.
  const r = item({ id: 'r', type: 'c2c.message.read', from: 'Jonh', to: 'jared', last_read_time: t0 / 1000 });
  assert.deepEqual(idx.apply(r), [before, sameSecond]);
  assert.deepEqual(before.read, { by: 'Jonh', at: t0 });
  assert.equal(after.read, null, 'sent after the read time');
  assert.equal(reply.read, null, "Jonh's own message");
  assert.equal(elsewhere.read, null, 'another conversation');
  assert.ok(r.merged);

  const again = item({ id: 'r2', type: 'c2c.message.read', from: 'Jonh', to: 'jared', last_read_time: t0 / 1000 + 10 });
  assert.deepEqual(idx.apply(again), [after], 'only what is newly read');
  assert.equal(before.read.at, t0, 'the first read time stays');

  const unknown = item({ id: 'r3', type: 'c2c.message.read', from: 'zoe', to: 'jared', last_read_time: t0 / 1000 });
  assert.deepEqual(idx.apply(unknown), []);
  assert.ok(!unknown.merged, 'nothing on hand: a line');

  idx.remove(after);
  const r4 = item({ id: 'r4', type: 'c2c.message.read', from: 'mia', to: 'jared', last_read_time: t0 / 1000 });
  assert.deepEqual(idx.apply(r4), [elsewhere]);
});

test('the read time may be seconds, as the IM gives it, or milliseconds', () => {
  const msg = { time: 1700000000800 };
  assert.ok(readCovers({ last_read_time: 1700000000 }, msg), 'the same second');
  assert.ok(!readCovers({ last_read_time: 1699999999 }, msg));
  assert.ok(readCovers({ last_read_time: 1700000000800 }, msg));
  assert.ok(!readCovers({ last_read_time: 1700000000799 }, msg));
  assert.ok(!readCovers({}, msg), 'no read time covers nothing');
});

test('presence keeps each user\'s latest status, and forgets the least recent beyond its size', () => {
  const p = new Presence(2);
  assert.ok(p.update({ type: 'user.status', to: 'alice', status: 'login', platform: 'Web', time: 10 }));
  assert.ok(p.update({ type: 'user.status', to: 'carol', status: 'login', time: 11 }));
  assert.ok(p.update({ type: 'user.status', to: 'carol', status: 'disconnect', time: 12 }));
  assert.equal(p.get('carol').online, false);
  assert.ok(!p.update({ type: 'user.status', to: 'carol', status: 'login', time: 11 }), 'an older status arriving late');
  assert.equal(p.get('carol').status, 'disconnect');
  assert.deepEqual(p.recent(5).map((u) => [u.user, u.online]), [['carol', false], ['alice', true]]);
  assert.ok(p.update({ type: 'user.status', from: 'dan', status: 'logout', time: 13 }));
  assert.equal(p.get('alice'), undefined, 'the least recently heard from goes first');
  assert.deepEqual(p.recent(1).map((u) => u.user), ['dan']);
  assert.ok(!p.update({ type: 'user.status', status: 'login' }), 'no user');
});
