// The browser client's reading of offsets, without a hub:
// node --test web/jstest (make test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newer } from '../sdk/imhub.js';

test('offsets: a higher number of the same epoch is newer, whatever the tags', () => {
  for (const [a, b, want] of [
    ['6:e:0a1b2c3d4e5f', '5:e:ffffffffffff', true],
    ['5:e:0a1b2c3d4e5f', '5:e:ffffffffffff', false],
    ['4:e:0a1b2c3d4e5f', '5:e:ffffffffffff', false],
    ['6:e', '5:e:ffffffffffff', true],
    ['5:e:0a1b2c3d4e5f', '5:e', false],
    ['10:e:0a1b2c3d4e5f', '9:e:ffffffffffff', true],
    ['1:f:0a1b2c3d4e5f', '9:e:ffffffffffff', true],
    ['1:e:0a1b2c3d4e5f', undefined, true],
  ]) {
    assert.equal(newer(a, b), want, `${a} after ${b}`);
  }
});
