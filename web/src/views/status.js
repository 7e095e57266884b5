// The connection indicator: a coloured dot and a word, driven by the SDK's connect-status
// listener (spec §3: 0 Disconnect, 1 Connected, 2 Connecting, 3 ConnectFail, 4 ConnectKick)
// plus the browser's own online/offline events.

import { h } from '../dom.js';

const LABELS = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
  failed: 'Login rejected',
  kicked: 'Signed in elsewhere',
  replaced: 'Watching only (signed in again elsewhere)',
};

export class StatusView {
  constructor() {
    this.label = h('span', { class: 'conn-label' });
    this.el = h('div', { class: 'conn', role: 'status', 'aria-live': 'polite', dataset: { testid: 'connection' } }, h('span', { class: 'conn-dot', 'aria-hidden': 'true' }), this.label);
    this.set('connecting');
  }

  /** One of connecting, connected, reconnecting, offline, failed, kicked. */
  set(state, detail = '') {
    this.state = state;
    this.el.dataset.status = state;
    this.label.textContent = LABELS[state] || state;
    this.el.title = detail || LABELS[state] || state;
  }
}
