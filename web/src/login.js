// The login screen: pick a demo user (POST /demo/login issues a fresh token), or, where the
// server has demo login off, enter a uid and a token the business server registered.

import { h, avatar, setChildren } from './dom.js';

const SESSION_KEY = 'magpie.session';

/** The session of this tab ({uid, token, ws_addr, api_base}), or null. */
export function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    return s && s.uid && s.token && s.ws_addr ? s : null;
  } catch (_err) {
    return null;
  }
}

export function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

export class LoginView {
  /** `people`: [{uid, name}] from GET /demo/users ([] = demo login off). */
  constructor(api, people, onSession) {
    this.api = api;
    this.people = people;
    this.onSession = onSession;
    this.error = h('p', { class: 'login-error', role: 'alert', hidden: true });
    this.el = h(
      'div',
      { class: 'login' },
      h(
        'div',
        { class: 'login-card' },
        h('div', { class: 'login-brand' }, h('span', { class: 'brand-mark brand-mark--big' }, '◆'), h('h1', {}, 'Magpie')),
        h('p', { class: 'login-lead' }, 'Messages that carry live state — on the official WuKongIM JS SDK.'),
        people.length ? this.demoPicker() : this.tokenForm(),
        this.error,
      ),
    );
  }

  demoPicker() {
    return h(
      'div',
      { class: 'login-section' },
      h('h2', { class: 'login-heading' }, 'Log in as a demo user'),
      h(
        'ul',
        { class: 'login-users' },
        this.people.map((p) =>
          h(
            'li',
            {},
            h('button', { type: 'button', class: 'login-user', dataset: { uid: p.uid }, onclick: (e) => this.demoLogin(p.uid, e.currentTarget) }, avatar(p.uid, p.name), h('span', { class: 'login-user-name' }, p.name), h('span', { class: 'login-user-uid' }, p.uid)),
          ),
        ),
      ),
      h('p', { class: 'login-hint' }, 'Open another browser window as someone else to chat between them.'),
    );
  }

  tokenForm() {
    const uid = h('input', { name: 'uid', required: true, autocomplete: 'username', placeholder: 'uid' });
    const token = h('input', { name: 'token', type: 'password', required: true, autocomplete: 'current-password', placeholder: 'token' });
    return h(
      'form',
      {
        class: 'login-section login-form',
        onsubmit: (e) => {
          e.preventDefault();
          this.tokenLogin(uid.value.trim(), token.value);
        },
      },
      h('h2', { class: 'login-heading' }, 'Log in with a token'),
      h('label', {}, 'User id', uid),
      h('label', {}, 'Token', token),
      h('button', { type: 'submit', class: 'btn btn--primary' }, 'Log in'),
      h('p', { class: 'login-hint' }, 'Demo login is off on this server; use a token registered with /user/token.'),
    );
  }

  showError(text) {
    this.error.hidden = !text;
    setChildren(this.error, text || '');
  }

  async demoLogin(uid, button) {
    this.showError('');
    button.classList.add('is-pending');
    try {
      const s = await this.api.post('/demo/login', { uid }, { auth: false });
      this.onSession({ uid: s.uid, token: s.token, ws_addr: s.ws_addr, api_base: s.api_base || '' });
    } catch (err) {
      this.showError(`Login failed: ${err.message || err}`);
    } finally {
      button.classList.remove('is-pending');
    }
  }

  async tokenLogin(uid, token) {
    this.showError('');
    try {
      const route = await this.api.get(`/route?uid=${encodeURIComponent(uid)}`, { auth: false });
      this.onSession({ uid, token, ws_addr: route.wss_addr || route.ws_addr, api_base: '' });
    } catch (err) {
      this.showError(`Login failed: ${err.message || err}`);
    }
  }
}
