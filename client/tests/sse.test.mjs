// The activity feed's Server-Sent Events parser, checked without a browser: the
// fields, the three line endings, and that a stream cut into chunks anywhere (inside
// a line, between CR and LF, inside a UTF-8 sequence) gives the same events.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_BUFFER, createSseParser } from '../js/sse.js';

const encode = (text) => new TextEncoder().encode(text);

/** Everything a parser makes of `chunks` (Uint8Arrays): its events, last id and retry. */
function parse(chunks, options) {
  const parser = createSseParser(options);
  const events = chunks.flatMap((chunk) => parser.push(chunk));
  return { events, lastEventId: parser.lastEventId, retryMs: parser.retryMs };
}

// Every feature at once, with the three line endings mixed, multi-byte text (2, 3 and
// 4 bytes per character) and a leading BOM.
const SAMPLE = '\uFEFF: a comment, then the retry\r\n'
  + 'retry: 2500\n\n'
  + 'event: shop.inventory.stock_changed\r\n'
  + 'id: e-1\r\n'
  + 'data: {"sku":"A001",\r\n'
  + 'data:  "name":"Café ☕ 🚲"}\r\n'
  + '\r\n'
  + 'event: shop.order.confirmed\r'
  + 'id: e-2\r'
  + 'data\r'
  + 'data: second line\r'
  + '\r'
  + ':keep-alive\n'
  + 'data: no type, no id: colons: kept\n'
  + 'unknown: field\n'
  + 'retry: soon\n'
  + '\n'
  + 'id: e-3\n'
  + '\n'
  + 'event: shop.pricing.price_changed\n'
  + '\n'
  + 'id: x\0y\n'
  + 'data: after a NUL id\n'
  + '\n'
  + 'data: unfinished, never dispatched\n';

const EXPECTED = {
  events: [
    { type: 'shop.inventory.stock_changed', data: '{"sku":"A001",\n "name":"Café ☕ 🚲"}', lastEventId: 'e-1' },
    { type: 'shop.order.confirmed', data: '\nsecond line', lastEventId: 'e-2' },
    { type: 'message', data: 'no type, no id: colons: kept', lastEventId: 'e-2' },
    { type: 'message', data: 'after a NUL id', lastEventId: 'e-3' },
  ],
  lastEventId: 'e-3',
  retryMs: 2500,
};

test('the sample stream in one chunk gives every field its meaning', () => {
  assert.deepEqual(parse([encode(SAMPLE)]), EXPECTED);
});

test('every single split point of the sample gives the same events', () => {
  const bytes = encode(SAMPLE);
  for (let i = 0; i <= bytes.length; i += 1) {
    assert.deepEqual(parse([bytes.subarray(0, i), bytes.subarray(i)]), EXPECTED, `split at byte ${i}`);
  }
});

test('every pair of split points, and one byte at a time, give the same events', () => {
  const bytes = encode(SAMPLE);
  for (let i = 0; i <= bytes.length; i += 1) {
    for (let j = i; j <= bytes.length; j += 7) {
      assert.deepEqual(parse([bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)]), EXPECTED, `split at ${i} and ${j}`);
    }
  }
  assert.deepEqual(parse([...bytes].map((b) => Uint8Array.of(b))), EXPECTED, 'one byte per chunk');
});

test('chunks of random sizes give the same events (seeded, so a failure repeats)', () => {
  const bytes = encode(SAMPLE);
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let round = 0; round < 500; round += 1) {
    const chunks = [];
    for (let at = 0; at < bytes.length;) {
      const size = Math.floor(random() * 12); // empty chunks included
      chunks.push(bytes.subarray(at, at + size));
      at += size;
    }
    assert.deepEqual(parse(chunks), EXPECTED, `round ${round}`);
  }
});

test('CR then LF in the next chunk is one line ending, CR then CR two', () => {
  assert.deepEqual(parse([encode('data: a\r'), encode('\ndata: b\r'), encode('\r')]).events,
    [{ type: 'message', data: 'a\nb', lastEventId: '' }]);
  assert.deepEqual(parse([encode('data: a\r'), encode('\r')]).events, [{ type: 'message', data: 'a', lastEventId: '' }]);
  // An empty chunk (a lone byte of a UTF-8 sequence decodes to nothing) keeps the CR pending.
  assert.deepEqual(parse([encode('data: a\r'), new Uint8Array(0), encode('\n\n')]).events,
    [{ type: 'message', data: 'a', lastEventId: '' }]);
});

test('a reconnection starts from the id it is given; only one space after the colon goes', () => {
  const { events, lastEventId } = parse([encode('data:no space\n\ndata:   three\n\nid\n\n')], { lastEventId: 'e-9' });
  assert.deepEqual(events, [
    { type: 'message', data: 'no space', lastEventId: 'e-9' },
    { type: 'message', data: '  three', lastEventId: 'e-9' },
  ]);
  assert.equal(lastEventId, '', 'an empty id: field resets the last event id');
});

test('an endless line or event throws instead of growing without bound', () => {
  const parser = createSseParser();
  const big = encode('x'.repeat(64 * 1024));
  assert.throws(() => {
    for (let i = 0; i * big.length <= MAX_BUFFER + big.length; i += 1) parser.push(big);
  }, /too long/);
  const events = createSseParser();
  const line = encode(`data: ${'y'.repeat(64 * 1024)}\n`);
  assert.throws(() => {
    for (let i = 0; i * line.length <= MAX_BUFFER + line.length; i += 1) events.push(line);
  }, /too long/);
});
