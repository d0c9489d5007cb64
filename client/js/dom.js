/**
 * A few DOM helpers, so views build elements without innerHTML (service text is
 * always inserted as text, never parsed as markup).
 */

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Creates an element: `h('button', { class: 'primary', onclick: fn }, 'Save')`.
 * Attributes: `class`, `on<event>` (listener), `true` (boolean attribute),
 * `null`/`undefined`/`false` (left out), anything else via setAttribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  appendAll(el, children);
  return el;
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
  return el;
}

/** Text only screen readers read (e.g. "was" before a struck-through price). */
export function srOnly(text) {
  return h('span', { class: 'visually-hidden' }, text);
}

/** A spinner that only shows when a call takes longer than a moment. */
export function spinner(label = 'Loading…') {
  return h('span', { class: 'spinner-wrap', 'data-testid': 'spinner' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }),
    srOnly(label));
}

/**
 * Marks `region` busy while `work` runs: aria-busy for assistive technology and a
 * CSS hook for the spinner. Returns what `work` returns.
 */
export async function busy(region, work) {
  region.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    region.removeAttribute('aria-busy');
  }
}

/** Finds a required element by id, failing loudly when the page and script disagree. */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`The page has no element #${id}`);
  return el;
}

/**
 * Runs `rerender` (which replaces the children of `container`) and puts the focus
 * back on the element with the same data-testid, so keyboard users keep their place;
 * when that element is gone (a removed line), on `fallback`.
 */
export function keepFocus(container, rerender, fallback = null) {
  const active = document.activeElement;
  const hadFocus = Boolean(active && container.contains(active));
  const testId = hadFocus ? active.getAttribute('data-testid') : null;
  rerender();
  if (!hadFocus) return;
  const again = testId ? container.querySelector(`[data-testid="${CSS.escape(testId)}"]`) : null;
  if (again) again.focus();
  else if (fallback) fallback.focus();
}
