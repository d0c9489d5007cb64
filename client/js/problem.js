/**
 * Shows a failed call as words: the problem's title and detail, with its code,
 * status and request id for a support ticket. Never the raw body.
 */

import { h } from './dom.js';
import { ApiError } from './api.js';

/** Extra problem fields worth a line of their own, with how to say them. */
const EXTRAS = {
  skus: (skus) => `Items concerned: ${skus.join(', ')}`,
  errors: (errors) => (Array.isArray(errors)
    ? errors.map((e) => (typeof e === 'string' ? e : [e.field, e.message || e.detail].filter(Boolean).join(': '))).join('; ')
    : null),
};

/**
 * What to do about a problem, by its code, where the service's own words are not
 * the whole story for the person in front of the page.
 */
const HINTS = {
  invalid_credentials: 'The email or the password is wrong. Check both and try again.',
  email_taken: 'An account with this email exists already: sign in with it instead.',
  unauthorized: 'Your sign-in is missing or has expired: sign in and try again.',
  forbidden: 'Your account is not allowed to do this.',
  customer_mismatch: 'Signed in, you can only order as yourself.',
};

/** The problem behind any error; a bug in the page becomes a problem too. */
export function problemOf(error) {
  if (error instanceof ApiError) return error.problem;
  return {
    title: 'Something went wrong in this page',
    detail: error && error.message ? error.message : String(error),
    code: 'client_error',
  };
}

/**
 * A problem as an element. `context` says what was being done ("Placing the order").
 */
export function renderProblem(error, context) {
  const problem = problemOf(error);
  const meta = [];
  if (problem.status) meta.push(`HTTP ${problem.status}`);
  if (problem.code) meta.push(h('span', {}, 'code ', h('code', {}, problem.code)));
  if (problem.request_id) {
    meta.push(h('span', {}, 'request id ', h('code', { 'data-testid': 'problem-request-id' }, problem.request_id)));
  }
  const extras = [];
  for (const [field, say] of Object.entries(EXTRAS)) {
    if (Array.isArray(problem[field]) && problem[field].length > 0) {
      const text = say(problem[field]);
      if (text) extras.push(h('p', { class: 'problem-extra' }, text));
    }
  }
  if (HINTS[problem.code]) {
    extras.push(h('p', { class: 'problem-hint', 'data-testid': 'problem-hint' }, HINTS[problem.code]));
  }
  if (problem.retry_after !== undefined) {
    extras.push(h('p', { class: 'problem-extra' }, `You can try again in ${problem.retry_after} s.`));
  }
  return h('div', { class: 'problem', 'data-testid': 'problem', 'data-code': problem.code || '' },
    h('p', { class: 'problem-title' },
      h('span', { class: 'problem-icon', 'aria-hidden': 'true' }, '!'),
      context ? `${context} failed: ` : '',
      h('strong', { 'data-testid': 'problem-title' }, problem.title)),
    problem.detail ? h('p', { class: 'problem-detail', 'data-testid': 'problem-detail' }, problem.detail) : null,
    extras,
    meta.length ? h('p', { class: 'problem-meta' }, meta.flatMap((m, i) => (i ? [' · ', m] : [m]))) : null);
}
