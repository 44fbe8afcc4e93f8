// Unit tests of the server API panel's pure parts: node --test web/jstest
import { test } from 'node:test';
import assert from 'node:assert/strict';

// api.js builds its panel when imported in a page; here there is none.
globalThis.document = { getElementById: () => null, addEventListener: () => {} };
const { presenceRows, publishedNote } = await import('../static/api.js');

test('presenceRows puts users with most connections first, then by name', () => {
  assert.deepEqual(presenceRows({ bob: 1, ann: 2, cid: 1 }), [['ann', 2], ['bob', 1], ['cid', 1]]);
  assert.deepEqual(presenceRows({}), []);
  assert.deepEqual(presenceRows(undefined), []);
});

test('publishedNote names the offset and says how long ago, so it is not read as a time of day', () => {
  assert.equal(publishedNote('12:03', 1000, 1200), 'published, offset 12:03 · sent just now');
  assert.equal(publishedNote('12:03', 1000, 4000), 'published, offset 12:03 · sent 3 s ago');
  assert.equal(publishedNote('1:e:t', 0, 125000), 'published, offset 1:e:t · sent 2 min ago');
});
