// Unit tests of the server API panel's pure parts: node --test web/jstest
import { test } from 'node:test';
import assert from 'node:assert/strict';

// api.js builds its panel when imported in a page; here there is none.
globalThis.document = { getElementById: () => null, addEventListener: () => {} };
const { presenceRows } = await import('../static/api.js');

test('presenceRows puts users with most connections first, then by name', () => {
  assert.deepEqual(presenceRows({ bob: 1, ann: 2, cid: 1 }), [['ann', 2], ['bob', 1], ['cid', 1]]);
  assert.deepEqual(presenceRows({}), []);
  assert.deepEqual(presenceRows(undefined), []);
});
