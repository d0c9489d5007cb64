// What the page reads from a token, and the operator view's words, checked without a browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readClaims } from '../js/session.js';
import { describeChange, parseTiers } from '../js/operator.js';

const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const jwt = (claims) => `${part({ alg: 'ES256', typ: 'JWT' })}.${part(claims)}.c2lnbmF0dXJl`;

test('a token\'s sub, exp and scopes are read from its payload', () => {
  const claims = readClaims(jwt({ sub: 'c-1', exp: 2000000000, scope: 'inventory:write pricing:write', name: 'ignored' }));
  assert.deepEqual(claims, { sub: 'c-1', exp: 2000000000, scopes: ['inventory:write', 'pricing:write'] });
  assert.deepEqual(readClaims(jwt({ sub: 'c-2', exp: 1 })).scopes, []);
  // Non-ASCII survives the base64url decoding.
  assert.equal(readClaims(jwt({ sub: 'zoë', exp: 1 })).sub, 'zoë');
});

test('anything that is not a JWT with a sub and a numeric exp is no session', () => {
  for (const token of [undefined, '', 'abc', 'a.b', 'a.b.c.d', `x.${part({ exp: 5 })}.y`, `x.${part({ sub: 's' })}.y`,
    `x.${part({ sub: 's', exp: '5' })}.y`, 'x.%%%.y', `x.${Buffer.from('not json').toString('base64url')}.y`]) {
    assert.equal(readClaims(token), null, String(token));
  }
});

test('quantity tiers are typed as minimum:percent pairs', () => {
  assert.equal(parseTiers('  '), null);
  assert.deepEqual(parseTiers('None'), []);
  assert.deepEqual(parseTiers(' 10:5, 50 : 10% '), [
    { min_quantity: 10, discount_percent: 5 },
    { min_quantity: 50, discount_percent: 10 },
  ]);
  assert.throws(() => parseTiers('10-5'), /“10-5” is not/);
});

test('changes read as words, whatever service recorded them', () => {
  assert.equal(describeChange({ kind: 'stock', delta: 7, reason: 'delivery', stock_after: 57 }),
    'Added 7 to the stock (delivery): 57 in stock after');
  assert.equal(describeChange({ kind: 'stock', delta: -3, stock_after: 0 }), 'Took 3 from the stock: out of stock after');
  assert.equal(describeChange({ kind: 'created', name: 'Desk', category: 'furniture', at: 'x', actor: 'y' }),
    'Created: name “Desk”, category furniture');
  assert.equal(describeChange({ kind: 'price', base_price: 27.5, discount_percent: 10, tiers: [] }),
    'Price set: base $27.50, discount 10%, no quantity discount');
  assert.equal(describeChange({ kind: 'price', base_price: 5, discount_percent: 0, tiers: null }),
    'Price set: base $5.00, discount 0%, the catalogue’s quantity discounts');
  assert.equal(describeChange({ kind: 'price', base_price: 5, discount_percent: 0, tiers: [{ min_quantity: 10, discount_percent: 5 }] }),
    'Price set: base $5.00, discount 0%, tiers 10+ units −5%');
  assert.equal(describeChange({ kind: 'repriced', extra_field: 3 }), 'repriced: extra field 3');
});
