/** How numbers, money and times read on the page. */

const moneyFormats = new Map();

/** `899.99, "USD"` -> "$899.99"; null (not priced yet) -> "—". */
export function money(amount, currency = 'USD') {
  if (amount === null || amount === undefined || Number.isNaN(Number(amount))) return '—';
  let format = moneyFormats.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat('en-US', { style: 'currency', currency });
    } catch {
      // An unknown currency code: show the number and the code.
      format = { format: (n) => `${Number(n).toFixed(2)} ${currency}` };
    }
    moneyFormats.set(currency, format);
  }
  return format.format(Number(amount));
}

/** Adds money the way the services do: in integer cents. */
export function sumMoney(amounts) {
  return amounts.reduce((cents, amount) => cents + Math.round(Number(amount) * 100), 0) / 100;
}

export function percentOff(percent) {
  return `−${percent}%`;
}

export function stockText(stock) {
  if (stock === 0) return 'Out of stock';
  return `${stock} in stock`;
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** "electronics" -> "Electronics". */
export function titleCase(word) {
  return word ? word.charAt(0).toUpperCase() + word.slice(1) : word;
}

export function clock(date) {
  return date.toLocaleTimeString('en-GB', { hour12: false });
}

export function dateTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso || '';
  return date.toLocaleString('en-GB', { dateStyle: 'medium', timeStyle: 'short' });
}

/**
 * The last 8 characters of an id: enough to tell orders apart on screen. (Not the
 * first: time-ordered UUIDs made within the same minute start alike.)
 */
export function shortId(id) {
  return String(id ?? '').replace(/-/g, '').slice(-8);
}

export function seconds(ms) {
  return `${Math.max(0, Math.ceil(ms / 1000))} s`;
}

export function duration(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
