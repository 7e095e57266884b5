// The card shell: what every interactive card shares (cards/registry.js has the plug-in API).
//
// One CardView per card message, keyed by message id; the message list asks it for its
// element and calls refresh() when the message's extension changed. State changes are
// patched in place so CSS transitions run: the tone/status classes swap (colours fade), the
// action buttons fade out and are then *removed* (never left greyed) while the outcome line
// fades in within the same grid cell (no layout jump), and body changes animate their height.
//
// An action: buttons show a pending state at once, the renderer's optimistic projection (if
// any) is shown; POST /cards/{id}/actions {action, params, action_id, base_version,
// confirm?}. 200 -> the returned (or re-fetched) projection. 409 {winner, at, current,
// can_confirm} -> roll back to `current`, say who won and when, and offer "Override" (same
// action with confirm: true on the new base version) when can_confirm. Other errors roll back
// and show the error.

import { h, setChildren, swapClass, formatClock, uuid } from '../dom.js';
import { payloadOf } from '../convert.js';
import { humanize, rendererFor, toneOf } from './registry.js';

/** Fade-out time of the action buttons before they are removed (matches app.css). */
const LEAVE_MS = 220;

function statusSlug(status) {
  return String(status || 'pending').toLowerCase().replace(/[^a-z0-9_-]+/g, '-');
}

/** projection.actions may be ["approve", ...] or [{action|name, label, style, ...}, ...]. */
export function normalizeActions(actions) {
  return (Array.isArray(actions) ? actions : [])
    .map((a) => {
      if (typeof a === 'string') return { name: a, label: humanize(a), style: '' };
      if (!a || typeof a !== 'object') return null;
      const name = a.action || a.name || a.id;
      if (!name) return null;
      return { ...a, name, label: a.label || humanize(name), style: a.style || '' };
    })
    .filter(Boolean);
}

const DANGER = /^(reject|decline|deny|withdraw|cancel|close|remove)/;

/** A projection from an action/GET response body (several shapes tolerated). */
function projectionFrom(body) {
  if (!body || typeof body !== 'object') return null;
  for (const candidate of [body.projection, body.card, body.data, body]) {
    if (candidate && typeof candidate === 'object' && ('status' in candidate || 'can_act' in candidate)) return candidate;
  }
  return null;
}

function who(winner) {
  if (!winner) return 'Someone else';
  if (typeof winner === 'string') return winner;
  return winner.uid || winner.actor_uid || winner.by || (winner.updated_by && winner.updated_by.uid) || 'Someone else';
}

function whenText(at) {
  if (at === undefined || at === null || at === '') return '';
  if (typeof at === 'number') return formatClock(at);
  const parsed = Date.parse(at);
  return Number.isNaN(parsed) ? String(at) : formatClock(parsed);
}

/** Height animation around a DOM change (FLIP), so a body that grows or shrinks glides. */
function morphHeight(el, mutate, animate) {
  if (!animate || !el.isConnected) {
    mutate();
    return;
  }
  const before = el.getBoundingClientRect().height;
  mutate();
  const after = el.getBoundingClientRect().height;
  if (Math.abs(after - before) < 1) return;
  el.style.height = `${before}px`;
  el.style.overflow = 'hidden';
  void el.offsetHeight; // start the transition from `before`
  el.style.transition = 'height 200ms ease';
  el.style.height = `${after}px`;
  const done = () => {
    el.style.height = '';
    el.style.overflow = '';
    el.style.transition = '';
  };
  el.addEventListener('transitionend', done, { once: true });
  setTimeout(done, 320);
}

export class CardController {
  /** `api`: http.Api with the user's token; `me`: the viewer's uid. */
  constructor(api, me) {
    this.api = api;
    this.me = me;
    /** message id -> CardView */
    this.views = new Map();
    /** Set once the server says it has no /cards endpoints: use local projections. */
    this.cardsApiMissing = false;
  }

  /** The element of a card message (the same element for the same message id). */
  element(message) {
    const id = String(message.messageID || '');
    let view = this.views.get(id);
    if (!view) {
      view = new CardView(this, message);
      if (id) this.views.set(id, view);
      view.refresh();
    } else {
      view.message = message;
    }
    return view.el;
  }

  /** The message's extension changed: re-project and repaint that card only. */
  refresh(message) {
    const view = this.views.get(String(message.messageID));
    if (!view) return;
    view.message = message;
    view.refresh();
  }

  /** What the page can show without the cards API: from the payload and the extension. */
  localProjection(message) {
    const payload = payloadOf(message);
    const card = payload.card || {};
    const extra = (message.remoteExtra && message.remoteExtra.extra) || {};
    const status = (message.remoteExtra && message.remoteExtra.status) || extra.status || card.status || 'pending';
    return {
      type: card.type || card.kind || payload.type,
      status,
      extra,
      version: (message.remoteExtra && message.remoteExtra.version) || 0,
      updated_by: (message.remoteExtra && message.remoteExtra.updatedBy) || null,
      can_act: false,
      actions: [],
      unavailable_reason: '',
      local: true,
    };
  }

  /** GET /cards/{id} (the per-viewer projection), or null when unavailable. */
  async fetchProjection(message) {
    if (this.cardsApiMissing || !message.messageID) return null;
    try {
      return projectionFrom(await this.api.get(`/cards/${encodeURIComponent(message.messageID)}`));
    } catch (err) {
      if (err.status === 404 && /no such endpoint/i.test(err.message)) this.cardsApiMissing = true;
      else console.warn('[magpie] card projection failed', err);
      return null;
    }
  }

  /** POST /cards/{id}/actions; resolves to the body, rejects with HttpError (409 included). */
  postAction(message, body) {
    return this.api.post(`/cards/${encodeURIComponent(message.messageID)}/actions`, body);
  }

  /**
   * The message's operation log, oldest first: GET /cards/{id}/history (the cards service),
   * else POST /message/extra/ops (the IM's log; business key only today, so a user token
   * gets 401/403 and the panel says the history is unavailable).
   */
  async fetchHistory(message) {
    const id = String(message.messageID);
    const sources = [
      () => this.api.get(`/cards/${encodeURIComponent(id)}/history`),
      () => this.api.post('/message/extra/ops', { message_id: id, limit: 100 }),
    ];
    let last = null;
    for (const source of sources) {
      try {
        const body = await source();
        if (Array.isArray(body)) return body;
        for (const key of ['history', 'ops', 'data', 'rows']) if (body && Array.isArray(body[key])) return body[key];
        return [];
      } catch (err) {
        if (![401, 403, 404, 405].includes(err.status)) throw err;
        last = err;
      }
    }
    throw last || new Error('no readable operation log');
  }
}

export class CardView {
  constructor(ctrl, message) {
    this.ctrl = ctrl;
    this.message = message;
    this.projection = ctrl.localProjection(message);
    this.pending = null; // {action, actionId, button}
    this.fetching = null;
    this.fetchAgain = false;
    this.historyOpen = false;
    this.leaveTimer = null;
    this.build();
    this.paint(false);
  }

  build() {
    this.kindEl = h('span', { class: 'card-kind' });
    this.titleEl = h('span', { class: 'card-title' });
    this.badgeText = h('span', { class: 'card-badge-text' });
    this.badge = h('span', { class: 'card-badge' }, h('span', { class: 'card-mark', 'aria-hidden': 'true' }), this.badgeText);
    this.body = h('div', { class: 'card-body' });
    this.actionsEl = h('div', { class: 'card-actions' });
    this.outcomeEl = h('div', { class: 'card-outcome' });
    this.noticeEl = h('div', { class: 'card-notice', role: 'alert', hidden: true });
    this.historyBtn = h('button', { class: 'link-button card-history-toggle', type: 'button', 'aria-expanded': 'false', onclick: () => this.toggleHistory() }, 'History');
    this.versionEl = h('span', { class: 'card-version' });
    this.historyEl = h('div', { class: 'card-history', hidden: true });
    this.el = h(
      'article',
      { class: 'card', dataset: { cardFor: String(this.message.messageID || '') } },
      h('header', { class: 'card-head' }, h('div', { class: 'card-heading' }, this.kindEl, this.titleEl), this.badge),
      this.body,
      (this.foot = h('div', { class: 'card-foot' }, this.actionsEl, this.outcomeEl)),
      this.noticeEl,
      h('div', { class: 'card-meta' }, this.historyBtn, this.versionEl),
      this.historyEl,
    );
  }

  ui() {
    return { me: this.ctrl.me, act: (action, params) => this.act(action, params), pending: this.pending };
  }

  /** Draw the current projection (in place; `animate` runs the height/fade transitions). */
  paint(animate = true) {
    const p = this.projection;
    const renderer = rendererFor(this.message, p);
    const payload = payloadOf(this.message);
    const status = p.status || 'pending';
    swapClass(this.el, 'card--tone-', toneOf(status));
    swapClass(this.el, 'card--status-', statusSlug(status));
    this.el.classList.toggle('card--placeholder', Boolean(renderer.isPlaceholder));
    this.el.classList.toggle('is-pending', Boolean(this.pending));
    this.el.dataset.status = status;
    this.el.dataset.version = String(p.version || 0);
    this.el.dataset.canAct = p.can_act ? '1' : '0';
    this.el.dataset.cardType = String(p.type ?? '');
    this.kindEl.textContent = humanize(p.type || 'card');
    const title = renderer.title ? renderer.title(payload, p) : (payload.card && payload.card.title) || '';
    this.titleEl.textContent = title;
    this.badgeText.textContent = humanize(status);
    morphHeight(this.body, () => setChildren(this.body, renderer(this.message, p, this.ui())), animate);
    this.paintActions(p, renderer, animate);
    this.versionEl.textContent = p.version ? `v${p.version}` : '';
  }

  paintActions(p, renderer, animate) {
    const actions = p.can_act && !renderer.hideActionBar ? normalizeActions(p.actions) : [];
    const outcome = renderer.outcome ? renderer.outcome(p) : defaultOutcome(p);
    this.outcomeEl.textContent = outcome || '';
    if (actions.length > 0) {
      clearTimeout(this.leaveTimer);
      this.actionsEl.classList.remove('is-leaving');
      setChildren(this.actionsEl, actions.map((a) => this.button(a)));
      this.outcomeEl.classList.remove('is-shown');
      this.foot.hidden = false;
      return;
    }
    this.outcomeEl.classList.toggle('is-shown', Boolean(outcome));
    if (this.actionsEl.childElementCount === 0) {
      this.foot.hidden = !outcome;
      return;
    }
    if (!animate) {
      this.actionsEl.replaceChildren();
      this.foot.hidden = !outcome;
      return;
    }
    // Fade the buttons out, then remove them: gone, not greyed. The outcome line fades in
    // in the same grid cell, so the card keeps its height.
    this.actionsEl.classList.add('is-leaving');
    clearTimeout(this.leaveTimer);
    this.leaveTimer = setTimeout(() => {
      this.actionsEl.replaceChildren();
      this.actionsEl.classList.remove('is-leaving');
      this.foot.hidden = !this.outcomeEl.textContent;
    }, LEAVE_MS);
  }

  button(a) {
    const pendingHere = this.pending && this.pending.action === a.name;
    const style = a.style || (DANGER.test(a.name) ? 'danger' : 'primary');
    return h(
      'button',
      {
        type: 'button',
        class: `btn btn--${style}${pendingHere ? ' is-pending' : ''}`,
        dataset: { action: a.name },
        disabled: Boolean(this.pending),
        'aria-busy': pendingHere ? 'true' : null,
        onclick: () => this.act(a.name, a.params || {}),
      },
      h('span', { class: 'spinner', 'aria-hidden': 'true' }),
      h('span', { class: 'btn-label' }, a.label),
    );
  }

  /** Re-fetch the per-viewer projection (coalesced), or re-derive it locally. */
  async refresh() {
    if (this.fetching) {
      this.fetchAgain = true;
      return this.fetching;
    }
    this.fetching = (async () => {
      do {
        this.fetchAgain = false;
        if (this.pending) return; // the action's answer repaints
        const fetched = await this.ctrl.fetchProjection(this.message);
        if (this.pending) return;
        const next = fetched || this.ctrl.localProjection(this.message);
        if (!this.projection.local && (next.version || 0) < (this.projection.version || 0)) continue;
        this.projection = next;
        this.paint(true);
        if (this.historyOpen) this.loadHistory();
      } while (this.fetchAgain);
    })().finally(() => {
      this.fetching = null;
    });
    return this.fetching;
  }

  async act(action, params = {}, { confirm = false } = {}) {
    if (this.pending) return;
    const before = this.projection;
    const renderer = rendererFor(this.message, before);
    this.pending = { action, actionId: uuid() };
    this.hideNotice();
    const optimistic = renderer.optimistic ? renderer.optimistic(before, action, params) : null;
    this.projection = optimistic ? { ...before, ...optimistic } : before;
    this.paint(true);
    const body = { action, params, action_id: this.pending.actionId, base_version: before.version || 0 };
    if (confirm) body.confirm = true;
    try {
      const answer = await this.ctrl.postAction(this.message, body);
      this.pending = null;
      const next = projectionFrom(answer);
      this.projection = next || before;
      this.paint(true);
      if (!next) this.refresh();
    } catch (err) {
      this.pending = null;
      this.rollback(before, err, action, params);
    }
  }

  rollback(before, err, action, params) {
    const conflict = err && err.status === 409 ? err.body || {} : null;
    const current = conflict ? projectionFrom(conflict.current) || (conflict.current && typeof conflict.current === 'object' ? conflict.current : null) : null;
    this.projection = current ? { ...before, ...current, can_act: 'can_act' in current ? current.can_act : false } : before;
    this.paint(true);
    if (conflict) this.showConflict(conflict, action, params);
    else this.showNotice(`Could not ${humanize(action).toLowerCase()}: ${(err && err.message) || err}`, []);
    this.refresh();
  }

  showConflict(conflict, action, params) {
    const at = whenText(conflict.at);
    const winner = conflict.winner || {};
    const theirs = typeof winner === 'object' ? winner.action || winner.operation || '' : '';
    const detail = [theirs ? humanize(theirs) : '', at ? `at ${at}` : ''].filter(Boolean).join(' ');
    const text = `${who(winner)} was first${detail ? ` (${detail})` : ''}. Your “${humanize(action)}” was not applied.`;
    const buttons = [];
    if (conflict.can_confirm) {
      buttons.push(
        h('button', { type: 'button', class: 'btn btn--primary btn--small', dataset: { confirm: action }, onclick: () => this.act(action, params, { confirm: true }) }, `${humanize(action)} anyway`),
      );
    }
    buttons.push(h('button', { type: 'button', class: 'btn btn--ghost btn--small', onclick: () => this.hideNotice() }, 'Dismiss'));
    this.showNotice(text, buttons, 'conflict');
  }

  showNotice(text, buttons, kind = 'error') {
    swapClass(this.noticeEl, 'card-notice--', kind);
    setChildren(this.noticeEl, h('p', { class: 'card-notice-text' }, text), buttons.length ? h('div', { class: 'card-notice-actions' }, buttons) : null);
    this.noticeEl.hidden = false;
  }

  hideNotice() {
    this.noticeEl.hidden = true;
    this.noticeEl.replaceChildren();
  }

  toggleHistory() {
    this.historyOpen = !this.historyOpen;
    this.historyBtn.setAttribute('aria-expanded', String(this.historyOpen));
    this.historyBtn.textContent = this.historyOpen ? 'Hide history' : 'History';
    this.historyEl.hidden = !this.historyOpen;
    if (this.historyOpen) this.loadHistory();
  }

  async loadHistory() {
    if (!this.historyEl.childElementCount) setChildren(this.historyEl, h('p', { class: 'card-history-empty' }, 'Loading…'));
    try {
      const ops = await this.ctrl.fetchHistory(this.message);
      setChildren(this.historyEl, ops.length ? h('ol', { class: 'card-history-list' }, ops.map(historyRow)) : h('p', { class: 'card-history-empty' }, 'No changes yet.'));
    } catch (err) {
      setChildren(this.historyEl, h('p', { class: 'card-history-empty' }, `History unavailable (${err.message || err}).`));
    }
  }
}

/** Statuses in which a card still waits for someone (no outcome line by default). */
const OPEN_STATUSES = new Set(['pending', 'open', 'active', 'in_progress']);

/**
 * The line that replaces the buttons: the projection's `outcome`, else why the viewer cannot
 * act, else "<Status> by <who>" once the card left its open state.
 */
export function defaultOutcome(p) {
  if (p.outcome) return p.outcome;
  if (p.unavailable_reason) return p.unavailable_reason;
  const status = String(p.status || 'pending');
  if (OPEN_STATUSES.has(status.toLowerCase())) return '';
  const by = (p.updated_by && p.updated_by.uid) || p.decided_by || '';
  return `${humanize(status)}${by ? ` by ${by}` : ''}`;
}

/** One operation-log row: time, who, what, the status change and the result. */
export function historyRow(op) {
  const actor = op.actor_uid || (op.actor && op.actor.uid) || (op.updated_by && op.updated_by.uid) || '?';
  const what = humanize(op.operation || op.action || 'update');
  const before = op.status_before || '';
  const after = op.status_after || '';
  const change = after && after !== before ? `${humanize(before || 'new')} → ${humanize(after)}` : '';
  const result = op.result || 'applied';
  return h(
    'li',
    { class: `card-history-row result-${result}`, dataset: { opId: String(op.op_id ?? '') } },
    h('time', { class: 'card-history-time' }, formatClock(op.created_at || op.at)),
    h('span', { class: 'card-history-actor' }, actor),
    h('span', { class: 'card-history-what' }, what),
    change ? h('span', { class: 'card-history-change' }, change) : null,
    result !== 'applied' ? h('span', { class: 'card-history-result' }, humanize(result)) : null,
  );
}
