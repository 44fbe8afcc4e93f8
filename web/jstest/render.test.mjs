// Unit tests of the dashboard's rendering functions: node --test web/jstest
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { card, clock, element, esc, lastReadMs, matches, members, messageKeys, presenceList, safeURL, shows, statusUser } from '../static/render.js';

test('esc escapes markup', () => {
  assert.equal(esc('<img src=x onerror="a">&\''), '&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;');
  assert.equal(esc(undefined), '');
});

test('safeURL keeps http(s) only', () => {
  assert.equal(safeURL('https://example.com/a.jpg'), 'https://example.com/a.jpg');
  assert.equal(safeURL('javascript:alert(1)'), '');
  assert.equal(safeURL('data:text/html,x'), '');
  assert.equal(safeURL('not a url'), '');
});

test('element renders each message type', () => {
  assert.match(element({ MsgType: 'TIMTextElem', MsgContent: { Text: 'red <b>packet</b>' } }), /red &lt;b&gt;packet&lt;\/b&gt;/);
  assert.match(element({ MsgType: 'TIMFaceElem', MsgContent: { Index: 1, Data: 'smile' } }), /face #1 · smile/);
  assert.match(element({ MsgType: 'TIMLocationElem', MsgContent: { Desc: 'office', Latitude: 1.5, Longitude: 2 } }), /office.*1\.5, 2/);
  assert.match(element({ MsgType: 'TIMCustomElem', MsgContent: { Data: '{"k":1}' } }), /custom: <code>\{&quot;k&quot;:1\}<\/code>/);
  const img = element({ MsgType: 'TIMImageElem', MsgContent: { UUID: 'u1', ImageInfoArray: [
    { Type: 1, Size: 900, URL: 'https://x/large.jpg' }, { Type: 3, Size: 10, URL: 'https://x/thumb.jpg' }] } });
  assert.match(img, /<img src="https:\/\/x\/thumb.jpg"/);
  assert.doesNotMatch(element({ MsgType: 'TIMImageElem', MsgContent: { ImageInfoArray: [{ Type: 3, URL: 'javascript:x' }] } }), /<img/);
  assert.match(element({ MsgType: 'TIMSoundElem', MsgContent: { Second: 3, Url: 'https://x/s.mp3' } }), /sound, 3 s.*href="https:\/\/x\/s.mp3"/);
  assert.match(element({ MsgType: 'TIMFileElem', MsgContent: { FileName: 'a.pdf', FileSize: 2048 } }), /a\.pdf.*2\.0 KiB/);
  assert.match(element({ MsgType: 'TIMVideoFileElem', MsgContent: { VideoSecond: 12 } }), /video, 12 s/);
  assert.match(element({ MsgType: 'TIMRelayElem', MsgContent: { Title: 'chat log', MsgNum: 3, AbstractList: ['a: hi', 'b: yo'] } }), /chat log.*3 messages.*a: hi/s);
  assert.match(element({ MsgType: 'TIMNewElem' }), /TIMNewElem/);
  assert.match(element(null), /element/);
});

const sent = { id: 'e1', type: 'group.message.sent', group_id: 'G1', topic_id: 'T', from: 'jared', time: 1, platform: 'Web',
  messages: [{ seq: 7 }], body: [{ MsgType: 'TIMTextElem', MsgContent: { Text: 'hello' } }] };

test('card shows a message, and a recall struck through with who and when', () => {
  const live = card({ ev: sent, key: 'e1', recalled: null });
  assert.match(live, /class="ev group-message-sent"/);
  assert.match(live.replace(/<[^>]*>/g, ''), /group G1 · topic T/);
  assert.match(live, /hello/);
  const gone = card({ ev: sent, key: 'e1', recalled: { by: 'admin', at: 0 } });
  assert.match(gone, /class="ev group-message-sent recalled"/);
  assert.match(gone, /recalled by admin/);
});

test('card shows a one-to-one withdrawal with its unread count', () => {
  const html = card({ ev: { id: 'w', type: 'c2c.message.recalled', from: 'jared', to: 'Jonh', unread: 7, messages: [{ key: 'k' }] }, key: 'w' });
  assert.match(html, /jared withdrew a message sent to Jonh/);
  assert.match(html, /unread 7/);
});

test('matches applies each filter', () => {
  assert.ok(matches(sent, {}));
  assert.ok(matches(sent, { type: 'group.message.sent', group: 'G1', user: 'jared', text: 'HELLO' }));
  assert.ok(!matches(sent, { type: 'c2c.message.sent' }));
  assert.ok(!matches(sent, { group: 'G2' }));
  assert.ok(!matches(sent, { user: 'bob' }));
  assert.ok(!matches(sent, { text: 'goodbye' }));
});

test('a recall finds the message it names', () => {
  const recall = { type: 'group.message.recalled', group_id: 'G1', topic_id: 'T', messages: [{ seq: 7 }, { seq: 8 }] };
  assert.ok(messageKeys(recall).includes(messageKeys(sent)[0]));
  const c2c = { type: 'c2c.message.sent', from: 'a', to: 'b', messages: [{ key: 'k1' }] };
  const withdraw = { type: 'c2c.message.recalled', from: 'a', to: 'b', messages: [{ key: 'k1' }] };
  assert.deepEqual(messageKeys(c2c), messageKeys(withdraw));
});

test('clock shows the date only for another day', () => {
  const now = new Date(2026, 10, 25, 12, 0, 0).getTime();
  assert.equal(clock(new Date(2026, 10, 25, 9, 5, 7).getTime(), now), '09:05:07');
  assert.equal(clock(new Date(2017, 2, 28, 15, 30, 22).getTime(), now), '2017-03-28 15:30:22');
  assert.equal(clock(0, now), '');
});

// text is a rendering without its markup, as a reader sees it.
const text = (html) => html.replace(/<[^>]*>/g, '').replace(/\s+/g, ' ').trim();
// says is a line's sentence as a reader sees it.
const says = (html) => text(html.match(/<span class="says">(.*)<\/span><button/s)[1]);
const G = { group_id: 'G1', time: 1 };

test('a status change is a line with a presence dot', () => {
  const on = card({ ev: { id: 's1', type: 'user.status', to: 'carol', status: 'login', reason: 'Register', platform: 'Web', kicked_devices: ['Android', { Platform: 'iPad' }] }, key: 's1' });
  assert.match(on, /class="ev line user-status online"/);
  assert.match(on, /class="dot"/);
  assert.equal(says(on), 'carol is online on Web · Register · signed out Android, iPad');
  const off = card({ ev: { id: 's2', type: 'user.status', from: 'carol', status: 'disconnect', reason: 'LinkClose' }, key: 's2' });
  assert.match(off, /class="ev line user-status offline"/);
  assert.equal(says(off), 'carol disconnected · LinkClose');
  assert.match(text(off), /carol disconnected · LinkClose/);
  assert.match(text(card({ ev: { id: 's3', type: 'user.status', user: 'dan', status: 'logout' }, key: 's3' })), /dan went offline/);
  assert.match(text(card({ ev: { id: 's4', type: 'user.status', to: 'eve', status: '<b>' }, key: 's4' })), /eve is &lt;b&gt;/);
  assert.equal(statusUser({ to: 'carol' }), 'carol');
});

test('joins and leaves are lines that say who, where and by whom', () => {
  const line = (ev) => says(card({ ev: { id: 'x', ...G, ...ev }, key: 'x' }));
  assert.match(line({ type: 'group.member.joined', members: ['alice', 'bob'], join_type: 'Invited', operator: 'admin' }), /alice, bob joined G1 \(invited by admin\)/);
  assert.match(line({ type: 'group.member.joined', members: [{ Member_Account: 'dave' }], join_type: 'Apply', operator: 'dave' }), /dave joined G1 \(asked to\)$/);
  assert.match(line({ type: 'group.member.joined', members: [{ user: 'erin' }], join_type: 'Apply', operator: 'owner' }), /erin joined G1 \(asked to, approved by owner\)/);
  assert.match(line({ type: 'group.member.joined', members: ['f'], operator: 'admin' }), /f joined G1 \(added by admin\)/);
  assert.match(line({ type: 'group.member.left', members: ['carol'], exit_type: 'Kicked', operator: 'admin' }), /carol was kicked from G1 by admin/);
  assert.match(line({ type: 'group.member.left', members: ['carol', 'dan'], exit_type: 'Kicked', operator: 'admin' }), /carol, dan were kicked from G1 by admin/);
  assert.match(line({ type: 'group.member.left', members: ['carol'], exit_type: 'Quit' }), /carol left G1$/);
  const many = line({ type: 'group.member.joined', members: Array.from({ length: 11 }, (_, i) => 'u' + i) });
  assert.match(many, /u0, .*u7 and 3 more joined G1/);
  assert.deepEqual(members({ members: ['a', { user: 'b' }, { Member_Account: 'c' }, null, { nothing: 1 }, 7] }), ['a', 'b', 'c', '7']);
  assert.deepEqual(members({}), []);
});

test('group changes, read receipts and one-to-one reads are lines', () => {
  const line = (ev) => says(card({ ev: { id: 'x', time: 1, ...ev }, key: 'x' }));
  assert.match(line({ ...G, type: 'group.destroyed', operator: 'admin' }), /G1 was destroyed by admin/);
  assert.match(line({ ...G, type: 'group.info.changed', operator: 'admin', changes: { notification: 'be <nice>' } }), /admin changed the info of G1: notification “be &lt;nice&gt;”/);
  assert.match(line({ ...G, type: 'group.info.changed' }), /^someone changed the info of G1$/);
  assert.match(line({ ...G, type: 'group.info.changed', changes: { name: '', custom: { Level: '3' } } }), /G1: name cleared, Level “3”/);
  assert.match(line({ ...G, type: 'group.message.read', receipts: [{ seq: 7, read: 3, unread: 2 }, { seq: 8, read: 1, unread: 0 }] }), /read receipts in G1: #7 3 read · 2 unread; #8 1 read · 0 unread/);
  const at = new Date(2026, 0, 2, 10, 0, 5).getTime();
  const c2c = line({ type: 'c2c.message.read', from: 'Jonh', to: 'jared', last_read_time: at / 1000, unread: 7 });
  assert.match(c2c, /Jonh read the messages from jared up to .*10:00:05 · 7 unread in all/);
  assert.equal(lastReadMs({ last_read_time: 1700000000 }), 1700000000000, 'seconds, as the IM gives them');
  assert.equal(lastReadMs({ last_read_time: 1700000000123 }), 1700000000123, 'milliseconds');
  assert.equal(lastReadMs({}), 0);
});

test('every value in a line is escaped', () => {
  const evil = '<img src=x onerror=alert(1)>';
  for (const ev of [
    { type: 'user.status', to: evil, status: 'login', reason: evil, platform: evil, kicked_devices: [evil] },
    { type: 'group.member.joined', group_id: evil, members: [evil], join_type: evil, operator: evil },
    { type: 'group.member.left', group_id: evil, members: [{ user: evil }], exit_type: evil, operator: evil },
    { type: 'group.message.read', group_id: evil, topic_id: evil, receipts: [{ seq: evil, read: evil, unread: evil }] },
    { type: 'c2c.message.read', from: evil, to: evil, unread: evil },
    { type: 'group.info.changed', group_id: evil, operator: evil, changes: { name: evil, custom: { [evil]: evil } } },
    { type: 'group.destroyed', group_id: evil, operator: evil },
  ]) {
    assert.doesNotMatch(card({ ev: { id: evil, ...ev }, key: evil }), /<img/, ev.type);
  }
  assert.doesNotMatch(presenceList([{ user: evil, online: true, platform: evil, at: 1 }]), /<img/);
});

test('a message card shows its read ticks', () => {
  const g = card({ ev: sent, key: 'e1', read: { count: 3, unread: 2, at: 1 } });
  assert.match(g, /class="ev group-message-sent read"/);
  assert.match(text(g), /✓✓ 3 read · 2 unread/);
  const c = card({ ev: { id: 'c', type: 'c2c.message.sent', from: 'jared', to: 'Jonh', time: 1 }, key: 'c', read: { by: 'Jonh', at: 1 } });
  assert.match(text(c), /✓✓ read by Jonh/);
  assert.doesNotMatch(card({ ev: sent, key: 'e1' }), /✓/);
});

test('the filters find the new events by type, group, user and text', () => {
  const joined = { type: 'group.member.joined', group_id: 'G1', members: ['alice', { Member_Account: 'bob' }], operator: 'admin', join_type: 'Invited' };
  assert.ok(matches(joined, { type: 'group.member.joined', group: 'G1' }));
  assert.ok(matches(joined, { user: 'bob' }), 'a member given as an object');
  assert.ok(matches(joined, { user: 'admin' }));
  assert.ok(!matches(joined, { user: 'carol' }));
  assert.ok(matches(joined, { text: 'ALICE' }));
  assert.ok(matches(joined, { text: 'invited' }));
  const status = { type: 'user.status', to: 'carol', status: 'disconnect', reason: 'LinkClose' };
  assert.ok(matches(status, { user: 'carol' }));
  assert.ok(matches(status, { text: 'linkclose' }));
  assert.ok(!matches(status, { group: 'G1' }));
  assert.ok(matches({ type: 'group.member.left', group_id: 'G1', members: ['carol'], exit_type: 'Kicked' }, { text: 'kicked', user: 'carol' }));
});

test('a receipt shown as ticks leaves the feed unless its type is asked for', () => {
  const receipt = { ev: { type: 'group.message.read', group_id: 'G1', receipts: [{ seq: 7, read: 1 }] }, merged: true };
  assert.ok(!shows(receipt, {}));
  assert.ok(!shows(receipt, { group: 'G1' }));
  assert.ok(shows(receipt, { type: 'group.message.read' }));
  assert.ok(shows({ ...receipt, merged: false }, {}), 'a receipt for messages not on hand is a line');
  assert.ok(shows({ ev: sent }, {}));
});

test('the user list shows each user with a dot and a filter button', () => {
  const html = presenceList([{ user: 'alice', online: true, platform: 'Web', at: 1 }, { user: 'carol', online: false, at: 1 }]);
  assert.match(html, /<li class="online"><span class="dot".*data-user="alice">alice<\/button>.*online · Web/);
  assert.match(html, /<li class="offline">.*data-user="carol">carol<\/button>.*offline ·/);
});

test('card shows a custom event\'s data, escaped', () => {
  const html = card({ ev: { id: 'api:1', type: 'custom', app: '1', time: 1, data: { text: '<b>shipped</b>' } }, key: 'api:1' });
  assert.match(html, /<span class="badge">custom<\/span>/);
  assert.match(html, /<span class="where"><\/span>/, 'no conversation');
  assert.match(html, /<pre class="el custom">\{&quot;text&quot;:&quot;&lt;b&gt;shipped&lt;\/b&gt;&quot;\}<\/pre>/);
});
