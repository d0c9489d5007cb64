/**
 * The account area in the header: "Sign in" and "Create account" (each opens its
 * form below the header: email, password, and a name for a new account), or,
 * signed in, "Signed in as <name or email>" and "Sign out".
 *
 * A new account is signed in straight away with the same email and password.
 * Problems show in words (js/problem.js). The password goes only into the body of
 * the identity call: it is cleared from the form after each attempt and never
 * kept, shown or logged.
 */

import { h, fill, spinner, busy } from './dom.js';
import { identityApi } from './api.js';
import { session, END_REASONS } from './session.js';
import { renderProblem } from './problem.js';

const MODES = {
  'sign-in': { heading: 'Sign in', submit: 'Sign in', busy: 'Signing in…', context: 'Signing in', passwordAutocomplete: 'current-password' },
  'sign-up': { heading: 'Create an account', submit: 'Create account', busy: 'Creating the account…', context: 'Creating the account', passwordAutocomplete: 'new-password' },
};

function field({ id, label, type, autocomplete, testId, hint }) {
  const hintId = hint ? `${id}-hint` : null;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', {
      id,
      name: id,
      type,
      autocomplete,
      required: true,
      spellcheck: 'false',
      'aria-required': 'true',
      'aria-describedby': hintId,
      'data-testid': testId,
    }),
    hint ? h('p', { id: hintId, class: 'quiet small' }, hint) : null);
}

/**
 * Mounts the account area: `root` is its place in the header, `panel` the
 * element below the header where the forms open.
 */
export function mountAccount(root, panel) {
  // Names typed when creating an account in this tab, by email: a token carries
  // no name, so a later sign-in with the same email can still greet by name.
  const names = new Map();
  let mode = null;

  const status = h('p', { class: 'account-status', 'data-testid': 'account-status', role: 'status', 'aria-live': 'polite' });
  const actions = h('div', { class: 'account-actions' });
  fill(root, status, actions);

  const heading = h('h2', { id: 'account-form-heading', tabindex: '-1' });
  const nameField = field({ id: 'account-name', label: 'Name', type: 'text', autocomplete: 'name', testId: 'account-name' });
  const emailField = field({ id: 'account-email', label: 'Email', type: 'email', autocomplete: 'email', testId: 'account-email' });
  const passwordField = field({
    id: 'account-password',
    label: 'Password',
    type: 'password',
    autocomplete: 'current-password',
    testId: 'account-password',
    hint: 'At least 10 characters for a new account.',
  });
  const submit = h('button', { type: 'submit', class: 'button', 'data-testid': 'account-submit' });
  const cancel = h('button', { type: 'button', class: 'button button-secondary', 'data-testid': 'account-cancel', onclick: () => close(true) }, 'Cancel');
  const result = h('div', { class: 'account-result', 'data-testid': 'account-result', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'account-form', novalidate: true, 'aria-labelledby': 'account-form-heading', 'data-testid': 'account-form' },
    heading, nameField, emailField, passwordField,
    h('div', { class: 'account-buttons' }, submit, cancel),
    result);
  fill(panel, form);
  const input = (id) => form.querySelector(`#${id}`);

  function open(next, opener) {
    mode = next;
    const words = MODES[mode];
    form.dataset.mode = mode;
    fill(heading, words.heading);
    submit.textContent = words.submit;
    nameField.hidden = mode !== 'sign-up';
    input('account-name').required = mode === 'sign-up';
    input('account-password').autocomplete = words.passwordAutocomplete;
    passwordField.querySelector('.quiet').hidden = mode !== 'sign-up';
    fill(result);
    panel.hidden = false;
    render();
    (mode === 'sign-up' ? input('account-name') : input('account-email')).focus();
    panel.dataset.opener = opener;
  }

  function close(returnFocus) {
    const opener = panel.dataset.opener;
    mode = null;
    panel.hidden = true;
    input('account-password').value = '';
    render();
    if (returnFocus && opener) root.querySelector(`[data-testid="${opener}"]`)?.focus();
  }

  /** The typed values, or null after marking what is missing. */
  function typed() {
    const values = {
      name: input('account-name').value.trim(),
      email: input('account-email').value.trim(),
      password: input('account-password').value,
    };
    const missing = ['name', 'email', 'password']
      .filter((key) => (key !== 'name' || mode === 'sign-up') && !values[key]);
    for (const key of ['name', 'email', 'password']) {
      input(`account-${key}`).toggleAttribute('aria-invalid', missing.includes(key));
    }
    if (missing.length === 0) return values;
    fill(result, h('p', { class: 'problem', 'data-testid': 'problem' },
      h('strong', { 'data-testid': 'problem-title' }, `Enter your ${missing.join(' and ')}`)));
    input(`account-${missing[0]}`).focus();
    return null;
  }

  async function signIn({ email, password }) {
    const { data } = await identityApi.createSession({ email, password });
    if (!session.start({ token: data.access_token, email, name: names.get(email.toLowerCase()) || '' })) {
      throw new Error('identity answered with a token this page cannot read');
    }
  }

  async function send(values) {
    const words = MODES[mode];
    submit.disabled = true;
    fill(result, h('p', { class: 'quiet' }, spinner(words.busy), ` ${words.busy}`));
    try {
      if (mode === 'sign-up') {
        const { data } = await identityApi.createAccount(values);
        names.set(String(data.email || values.email).toLowerCase(), data.name || values.name);
      }
      await signIn(values);
      input('account-password').value = '';
      close(false);
      status.focus();
    } catch (error) {
      input('account-password').value = '';
      fill(result, renderProblem(error, words.context));
    } finally {
      submit.disabled = false;
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const values = typed();
    if (values) busy(form, () => send(values));
  });
  panel.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') close(true);
  });

  function button(testId, label, onclick, extra = {}) {
    return h('button', { type: 'button', class: 'button button-header', 'data-testid': testId, onclick, ...extra }, label);
  }

  function render() {
    root.dataset.signedIn = String(session.signedIn);
    if (session.signedIn) {
      const role = session.has('inventory:write') || session.has('pricing:write') ? ' (operator)' : '';
      fill(status, 'Signed in as ', h('strong', { 'data-testid': 'account-who' }, session.displayName), role);
      fill(actions, button('sign-out', 'Sign out', () => {
        session.end('signedOut');
        root.querySelector('[data-testid="show-sign-in"]')?.focus();
      }));
      return;
    }
    fill(status, session.endReason && session.endReason !== 'signedOut'
      ? h('span', { 'data-testid': 'account-message', 'data-reason': session.endReason }, END_REASONS[session.endReason])
      : h('span', { 'data-testid': 'account-message', 'data-reason': session.endReason || '' },
        session.endReason ? END_REASONS.signedOut : 'Not signed in.'));
    const opened = (which) => ({ 'aria-expanded': String(mode === which), 'aria-controls': 'account-panel' });
    fill(actions,
      button('show-sign-in', 'Sign in', () => (mode === 'sign-in' ? close(true) : open('sign-in', 'show-sign-in')), opened('sign-in')),
      button('show-sign-up', 'Create account', () => (mode === 'sign-up' ? close(true) : open('sign-up', 'show-sign-up')), opened('sign-up')));
  }

  status.tabIndex = -1;
  session.subscribe(() => {
    if (session.signedIn && mode) close(false);
    render();
  });
  render();
}
