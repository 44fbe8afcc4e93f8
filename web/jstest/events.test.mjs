// Unit tests of how the dashboard shows the IM's newer events: edits
// replacing a message in place, reactions as live counts, room presence,
// the one-line events, and the first load's history probe: node --test web/jstest
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { card, messageKeys, messageName, previousBody, reactionCount, reactions, roomList, shownBody, topic } from '../static/render.js';
import { RoomPresence, applyEdit, applyExtension } from '../static/track.js';
import { sinceLadder } from '../static/history.js';

const textOf = (html) => html.replace(/<[^>]*>/g, '').replace(/\s+/g, ' ').trim();
const says = (html) => textOf(html.match(/<span class="says">(.*)<\/span><button/s)[1]);
const txt = (t) => [{ MsgType: 'TIMTextElem', MsgContent: { Text: t } }];
const sentItem = () => ({
  ev: { id: 's', type: 'group.message.sent', app: 'A', group_id: 'G1', from: 'jared', time: 1000, messages: [{ seq: 7, id: 'm7' }], body: txt('helo') },
  key: 's',
});
const edit = (id, time, text, more = {}) => ({ id, type: 'group.message.modified', app: 'A', group_id: 'G1', operator: 'jared', time, messages: [{ seq: 7 }], body: txt(text), ...more });

test('an edit replaces the message in place, marked edited, the previous text one click away', () => {
  const item = sentItem();
  assert.ok(messageKeys(edit('e1', 2000, 'x')).includes(messageKeys(item.ev)[0]), 'an edit finds the message it names');
  assert.ok(applyEdit(item, edit('e1', 2000, 'hello')));
  assert.deepEqual(shownBody(item), txt('hello'));
  assert.deepEqual(previousBody(item), txt('helo'));
  const html = card(item);
  assert.match(html, /class="ev group-message-sent edited"/);
  assert.match(html, /<div class="body"><p class="el text">hello<\/p><\/div>/);
  assert.match(html, /<details class="edit-note"><summary>edited by jared/);
  assert.match(textOf(html.match(/<div class="previous">.*?<\/div>/s)[0]), /before: helo/);
  assert.equal(messageName(item), '“hello”', 'named by its text as edited');

  assert.ok(applyEdit(item, edit('e2', 3000, 'hello!')), 'a later edit wins');
  assert.deepEqual(shownBody(item), txt('hello!'));
  assert.deepEqual(previousBody(item), txt('hello'));
  assert.match(card(item), /\(2 edits\)/);
});

test('a stale edit (older time, arriving late) does not replace a newer one; a repeat counts once', () => {
  const item = sentItem();
  assert.ok(applyEdit(item, edit('late', 3000, 'newest')));
  assert.equal(applyEdit(item, edit('early', 2000, 'older')), false, 'older than the one shown');
  assert.deepEqual(shownBody(item), txt('newest'));
  assert.deepEqual(previousBody(item), txt('older'), 'kept as the version before it');
  assert.equal(applyEdit(item, edit('late', 3000, 'newest')), false, 'the same event again');
  assert.equal(item.edits.length, 2);
  const fresh = sentItem();
  assert.equal(previousBody(fresh), undefined);
  assert.doesNotMatch(card(fresh), /edited/);
});

test('an edit whose message is not on the page is a card with the new text', () => {
  const html = card({ ev: edit('e', 2000, 'new text'), key: 'e' });
  assert.match(html, /class="ev group-message-modified"/);
  assert.match(textOf(html), /jared edited message #7; it now reads:new text/);
  const c2c = card({ ev: { id: 'c', type: 'c2c.message.modified', from: 'a', to: 'b', messages: [{ key: 'k' }], body: txt('fixed') }, key: 'c' });
  assert.match(textOf(c2c), /a edited a message; it now reads:fixed/);
});

const ext = (seq, operation, extensions = []) => ({ id: 'x' + seq, type: 'group.message.extension', group_id: 'G1', messages: [{ seq: 7 }], operation, extensions, extension_seq: seq });

test('reactions show as counts under their message and change with set, delete and clear', () => {
  const item = sentItem();
  assert.ok(applyExtension(item, ext(1, 'set', [{ key: '👍', value: '["a","b"]', seq: 1 }, { key: '❤', value: '["c"]', seq: 1 }])));
  assert.deepEqual(reactions(item).map((r) => [r.key, r.count]), [['👍', 2], ['❤', 1]]);
  let html = card(item);
  assert.match(textOf(html.match(/<ul class="reactions".*<\/ul>/s)[0]), /👍 2\s*❤ 1/);
  assert.ok(applyExtension(item, ext(2, 'set', [{ key: '❤', value: '["c","d","e"]', seq: 2 }])));
  assert.deepEqual(reactions(item).map((r) => [r.key, r.count]), [['❤', 3], ['👍', 2]]);
  assert.ok(applyExtension(item, ext(3, 'delete', [{ key: '👍', value: '', seq: 3 }])));
  assert.deepEqual(reactions(item).map((r) => r.key), ['❤']);
  assert.ok(applyExtension(item, ext(4, 'clear')));
  assert.deepEqual(reactions(item), []);
  assert.doesNotMatch(card(item), /reactions/);
  html = card(item);
  assert.equal(applyExtension(item, ext(5, 'rename')), false, 'an unknown operation changes nothing');
});

test('a stale extension_seq is ignored: the higher one wins, whatever the order of arrival', () => {
  const item = sentItem();
  assert.ok(applyExtension(item, ext(10, 'set', [{ key: 'k', value: '5' }])));
  assert.equal(applyExtension(item, ext(9, 'clear')), false, 'older');
  assert.equal(applyExtension(item, ext(10, 'delete', [{ key: 'k' }])), false, 'the same seq again');
  assert.deepEqual(reactions(item).map((r) => [r.key, r.count]), [['k', 5]]);
  assert.equal(applyExtension(item, { ...ext(11, 'set'), extension_seq: undefined }), false, 'no seq: nothing to order by');
});

test('reactionCount reads users lists, numbers and plain values', () => {
  assert.equal(reactionCount('["a","b","c"]'), 3);
  assert.equal(reactionCount('12'), 12);
  assert.equal(reactionCount(''), 0);
  assert.equal(reactionCount('value2'), 1);
  assert.equal(reactionCount('[not json'), 1);
  assert.equal(reactionCount(undefined), 0);
});

test('room presence: online members show, offline ones leave, a late older event is ignored', () => {
  const rooms = new RoomPresence();
  const st = (time, status, members, group = 'AV1') => ({ type: 'group.member.status', group_id: group, time, status, members });
  assert.ok(rooms.update(st(1, 'online', ['ann', 'bob'])));
  assert.ok(rooms.update(st(1, 'online', ['cid'], 'AV2')));
  assert.deepEqual(rooms.rooms(), [{ group: 'AV1', users: ['ann', 'bob'] }, { group: 'AV2', users: ['cid'] }]);
  assert.ok(rooms.update(st(3, 'offline', ['bob'])));
  assert.deepEqual(rooms.rooms()[0], { group: 'AV1', users: ['ann'] });
  assert.equal(rooms.update(st(2, 'online', ['bob'])), false, 'older than the offline');
  assert.deepEqual(rooms.rooms()[0].users, ['ann']);
  assert.equal(rooms.update(st(4, 'away', ['ann'])), false, 'an unknown status changes nothing');
  assert.ok(rooms.update({ type: 'group.destroyed', group_id: 'AV2' }));
  assert.deepEqual(rooms.rooms(), [{ group: 'AV1', users: ['ann'] }]);
  assert.ok(rooms.update(st(5, 'offline', ['ann'])));
  assert.deepEqual(rooms.rooms(), []);
  const small = new RoomPresence(2);
  small.update(st(1, 'online', ['a', 'b', 'c']));
  assert.deepEqual(small.rooms()[0].users, ['b', 'c'], 'bounded: the least recent forgotten');
  const evil = '<img src=x onerror=alert(1)>';
  assert.doesNotMatch(roomList([{ group: evil, users: [evil] }]), /<img/);
});

test('topic ids show short, the full id on hover', () => {
  const id = '@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_TestTopic';
  assert.equal(topic(id), `<abbr class="topic" title="${id}">TestTopic</abbr>`);
  assert.match(topic('@TGS#_@TGS#cQVLVHIM62CJ@TOPIC#_a-very-long-topic-name-indeed'), />a-very-lo…e-indeed</);
  assert.match(topic('plain'), />plain</);
  const html = card({ ev: { id: 'm', type: 'group.message.sent', group_id: '@TGS#cQVLVHIM62CJ', topic_id: id, from: 'a', messages: [{ seq: 1 }], body: txt('hi') }, key: 'm' });
  assert.doesNotMatch(textOf(html), /@TOPIC#/, 'the full id only in the title');
  assert.match(html, new RegExp(`title="${id}"`));
});

test('a recall names the message it recalls: its text when the page has it, else its sequence', () => {
  const recall = { id: 'r', type: 'group.message.recalled', group_id: 'G1', operator: 'admin', messages: [{ seq: 7 }, { seq: 8 }] };
  assert.match(textOf(card({ ev: recall, key: 'r', names: ['“hello”', ''] })), /admin recalled “hello”, message #8/);
  assert.match(textOf(card({ ev: recall, key: 'r' })), /admin recalled message #7, message #8/);
  const w = { id: 'w', type: 'c2c.message.recalled', from: 'jared', to: 'Jonh', messages: [{ key: 'k' }] };
  assert.match(textOf(card({ ev: w, key: 'w', names: ['“psst”'] })), /jared withdrew “psst” sent to Jonh/);
  assert.match(messageName({ ev: { messages: [{ seq: 3 }], body: [{ MsgType: 'TIMImageElem' }] } }), /^an? image message$/);
  assert.equal(messageName({ ev: { messages: [{ seq: 3 }], body: [] } }), 'message #3');
  assert.equal(messageName({ ev: { body: txt('x'.repeat(60)) } }).length, 42, 'a long text is cut');
});

test('the newer group events are one readable line each', () => {
  const line = (ev) => says(card({ ev: { id: 'x', group_id: 'G1', time: 1, ...ev }, key: 'x' }));
  assert.equal(line({ type: 'group.created', owner: 'leckie', name: 'Lunch', group_type: 'Public', members: ['a', 'b'] }), 'leckie created G1 “Lunch” (Public) with a, b');
  assert.equal(line({ type: 'group.member.changed', members: ['ann'], role: 'Admin', operator: 'leckie' }), 'ann in G1: role Admin by leckie');
  assert.equal(line({ type: 'group.member.changed', members: ['ann', 'bob'], name_card: 'chef' }), 'ann, bob in G1: name card “chef”');
  assert.equal(line({ type: 'group.owner.changed', owner: 'bob', previous_owner: 'ann' }), 'bob is now the owner of G1 (was ann)');
  const id = '@TGS#_G1@TOPIC#_news';
  assert.equal(line({ type: 'group.topic.created', topic_id: id, name: 'News', operator: 'ann' }), 'topic news “News” created in G1 by ann');
  assert.equal(line({ type: 'group.topic.changed', topic_id: id, changes: { name: 'Headlines', notification: '' } }), 'topic news of G1 changed: name “Headlines”, notification cleared');
  assert.equal(line({ type: 'group.topic.changed', name: 'Old', changes: { introduction: 'hi' } }), 'a topic of G1 changed: introduction “hi”', 'a sample without TopicId');
  assert.equal(line({ type: 'group.topic.destroyed', topic_ids: [id, '@TGS#_G1@TOPIC#_old'] }), 'topics news, old of G1 destroyed');
  assert.equal(line({ type: 'group.attrs.changed', operation: 'set', attrs: { level: '3', theme: 'dark' } }), 'attributes of G1 set level “3”, theme “dark”');
  assert.equal(line({ type: 'group.attrs.changed', operation: 'delete', attrs: { level: '' } }), 'attributes of G1 removed level');
  assert.equal(line({ type: 'group.attrs.changed', operation: 'clear', attrs: {} }), 'attributes of G1 cleared');
  assert.equal(line({ type: 'group.member.status', members: ['ann'], status: 'online' }), 'ann came online in room G1');
  assert.equal(line({ type: 'group.member.status', members: ['ann'], status: 'offline', reason: 'timeout' }), 'ann went offline in room G1 · timeout');
  assert.equal(line({ type: 'group.message.extension', messages: [{ seq: 7 }], operation: 'set', extensions: [{ key: '👍', value: '1' }] }), 'reactions on message #7 in G1: set 👍');
  assert.match(card({ ev: { id: 'o', type: 'group.member.status', group_id: 'G', members: ['a'], status: 'online' }, key: 'o' }), /class="ev line group-member-status online"/);
});

test('every value of the newer events is escaped', () => {
  const evil = '<img src=x onerror=alert(1)>';
  const item = sentItem();
  applyEdit(item, edit('e', 2000, evil, { operator: evil }));
  applyExtension(item, ext(1, 'set', [{ key: evil, value: evil }]));
  assert.doesNotMatch(card(item), /<img/);
  for (const ev of [
    { type: 'group.message.modified', group_id: evil, topic_id: evil, operator: evil, messages: [{ seq: evil }], body: txt(evil) },
    { type: 'c2c.message.extension', from: evil, to: evil, operator: evil, messages: [{ seq: evil }], operation: evil, extensions: [{ key: evil }] },
    { type: 'group.created', group_id: evil, owner: evil, name: evil, group_type: evil, members: [evil] },
    { type: 'group.member.changed', group_id: evil, members: [evil], role: evil, name_card: evil, operator: evil },
    { type: 'group.owner.changed', group_id: evil, owner: evil, previous_owner: evil },
    { type: 'group.topic.created', group_id: evil, topic_id: evil, name: evil, operator: evil },
    { type: 'group.topic.changed', group_id: evil, topic_id: evil, changes: { name: evil, custom: { [evil]: evil } } },
    { type: 'group.topic.destroyed', group_id: evil, topic_ids: [evil] },
    { type: 'group.attrs.changed', group_id: evil, operation: evil, attrs: { [evil]: evil } },
    { type: 'group.member.status', group_id: evil, members: [evil], status: evil, reason: evil },
    { type: 'group.message.recalled', group_id: evil, operator: evil, messages: [{ seq: evil }] },
  ]) {
    assert.doesNotMatch(card({ ev: { id: evil, ...ev }, key: evil, names: [evil] }), /<img/, ev.type);
  }
});

test('the first load tries offsets from the channel\'s start towards its newest event', () => {
  assert.deepEqual(sinceLadder('0:e1'), { epoch: '', at: [] }, 'an empty channel has no history');
  assert.deepEqual(sinceLadder('garbage'), { epoch: '', at: [] });
  assert.deepEqual(sinceLadder('3:e1:t'), { epoch: 'e1', at: [0, 2] });
  assert.deepEqual(sinceLadder('150:e1:t'), { epoch: 'e1', at: [0, 50, 100, 130, 140, 149] });
  const { at } = sinceLadder('100000:e');
  assert.equal(at[0], 0);
  assert.equal(at.at(-1), 99999);
  assert.deepEqual(at, [...at].sort((a, b) => a - b), 'earliest first');
});
