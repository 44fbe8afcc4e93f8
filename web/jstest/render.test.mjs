// Unit tests of the dashboard's rendering functions: node --test web/jstest
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { card, clock, element, esc, matches, messageKeys, newer, safeURL } from '../static/render.js';

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
  assert.match(live, /group G1 · topic T/);
  assert.match(live, /hello/);
  const gone = card({ ev: sent, key: 'e1', recalled: { by: 'admin', at: 0 } });
  assert.match(gone, /class="ev group-message-sent recalled"/);
  assert.match(gone, /recalled by admin/);
});

test('card shows a one-to-one withdrawal with its unread count', () => {
  const html = card({ ev: { id: 'w', type: 'c2c.message.recalled', from: 'jared', to: 'Jonh', unread: 7, messages: [{ key: 'k' }] }, key: 'w' });
  assert.match(html, /jared withdrew a message to Jonh/);
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

test('newer orders offsets within an epoch', () => {
  assert.ok(newer('5:e', undefined));
  assert.ok(newer('6:e', '5:e'));
  assert.ok(!newer('5:e', '5:e'));
  assert.ok(!newer('4:e', '10:e'));
  assert.ok(newer('1:f', '9:e'), 'a new epoch');
});

test('clock shows the date only for another day', () => {
  const now = new Date(2026, 10, 25, 12, 0, 0).getTime();
  assert.equal(clock(new Date(2026, 10, 25, 9, 5, 7).getTime(), now), '09:05:07');
  assert.equal(clock(new Date(2017, 2, 28, 15, 30, 22).getTime(), now), '2017-03-28 15:30:22');
  assert.equal(clock(0, now), '');
});
