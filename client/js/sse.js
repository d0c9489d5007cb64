/**
 * A Server-Sent Events parser (the `text/event-stream` format as the HTML standard
 * defines it), for reading a stream with fetch: an EventSource cannot send an
 * Authorization header.
 *
 * Feed it the body's bytes as they come, in chunks cut anywhere (inside a line, a
 * CRLF or a UTF-8 sequence): `push(bytes)` answers the events the chunk completed,
 * `{ type, data, lastEventId }`. Lines end with CRLF, LF or CR; a line starting
 * with ':' is a comment; `event:` names the type ('message' when absent), `data:`
 * lines are joined with '\n', `id:` sets the last event id (kept across events, and
 * ignored when it holds a NUL), `retry:` (digits only) sets `retryMs`; other fields
 * are ignored. A blank line dispatches the event, unless it has no data. What is
 * left unfinished at the end of a stream is dropped (the caller just stops pushing).
 *
 * A stream is untrusted: a line or an event longer than MAX_BUFFER characters
 * throws, rather than growing without bound.
 */

/** Longest line, and longest event's data, accepted (characters). */
export const MAX_BUFFER = 1 << 20;

function tooLong() {
  return new Error('the event stream sent a line or an event too long to keep');
}

/** A parser for one stream; `lastEventId` is the id to start from (a reconnection's). */
export function createSseParser({ lastEventId = '' } = {}) {
  const decoder = new TextDecoder('utf-8'); // strips one leading BOM, as the format wants
  let pending = ''; // the unfinished line
  let skipLf = false; // the last chunk ended with CR: a LF that starts the next belongs to it
  let type = '';
  let data = '';
  let hasData = false;
  let idBuffer = lastEventId;

  const parser = { lastEventId, retryMs: null, push };

  function field(line, events) {
    if (line === '') {
      parser.lastEventId = idBuffer;
      if (hasData) events.push({ type: type || 'message', data, lastEventId: idBuffer });
      type = '';
      data = '';
      hasData = false;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'event') type = value;
    else if (name === 'data') {
      data = hasData ? `${data}\n${value}` : value;
      hasData = true;
      if (data.length > MAX_BUFFER) throw tooLong();
    } else if (name === 'id') {
      if (!value.includes('\0')) idBuffer = value;
    } else if (name === 'retry') {
      if (/^[0-9]+$/.test(value)) parser.retryMs = Number(value);
    }
  }

  /** The events completed by `bytes` (a Uint8Array), in order. */
  function push(bytes) {
    let text = decoder.decode(bytes, { stream: true });
    if (skipLf && text.startsWith('\n')) text = text.slice(1);
    if (text) skipLf = false;
    const events = [];
    let start = 0;
    for (let i = 0; i < text.length; i += 1) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = pending + text.slice(start, i);
      pending = '';
      if (c === 13) {
        if (i + 1 === text.length) skipLf = true;
        else if (text.charCodeAt(i + 1) === 10) i += 1;
      }
      start = i + 1;
      field(line, events);
    }
    pending += text.slice(start);
    if (pending.length > MAX_BUFFER) throw tooLong();
    return events;
  }

  return parser;
}
