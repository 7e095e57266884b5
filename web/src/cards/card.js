// The card shell: what every interactive card shares (cards/registry.js has the plug-in API).
//
// One CardView per card message, keyed by message id; the message list asks it for its
// element and calls refresh() when the message's extension changed. The shell draws the
// per-viewer projection of docs/cards.md: the one embedded in the message's extension
// (`extra.card` of a /message/extra/sync row or of /channel/messagesync's message_extra), else
// GET /cards/{id} (a card that arrived live before its first sync row). State changes are
// patched in place so CSS transitions run: the tone/status classes swap (colours fade), the
// body is morphed into its new shape (bars glide, inputs keep their text and focus), the
// action buttons fade out and are then *removed* (never left greyed) while the outcome line
// fades in within the same grid cell (no layout jump), and body changes animate their height.
//
// An action: the card shows its pending state at once (and the renderer's optimistic
// projection, if any); POST /cards/{id}/actions {action, params, action_id, base_version,
// confirm?} — action_id a fresh uuid per click, kept for the automatic retries of a request
// that never got an answer (network down, 5xx), base_version the version the page shows.
// 200 -> the returned projection. 409 {winner, at, current, can_confirm} -> roll back to
// `current`, say who won and when, and offer "… anyway" (the same action with confirm: true
// on the new base version) when can_confirm. Other errors roll back and show the error.
//
// Ephemeral answers (docs/cards.md section 13): an action's 200 may carry `ephemeral: {text,
// doc}` for the actor alone, and the server sends the same as a `cardEphemeral` CMD to the
// actor's own devices (chat.js hands it to CardController.ephemeral). Either shows a transient
// note under the card, once per action_id, on this viewer's page only.

import { h, formatClock, morphChildren, setChildren, swapClass, uuid } from '../dom.js';
import { payloadOf } from '../convert.js';
import { humanize, rendererFor, statusLabel, toneOf } from './registry.js';
import { renderStaticBlocks } from './document.js';

/** Fade-out time of the action buttons before they are removed (matches app.css). */
const LEAVE_MS = 220;
/** Automatic retries of an action that got no answer, and the pause before each (ms). */
const RETRY_DELAYS_MS = [300, 1000, 2500];
/** Longest wait for the browser to come back online before a retry. */
const ONLINE_WAIT_MS = 30000;
/** How long an ephemeral answer stays under the card unless dismissed. */
const EPHEMERAL_MS = 60000;

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

/** Whether an object is a card projection (docs/cards.md section 4). */
export function isProjection(v) {
  return Boolean(v && typeof v === 'object' && 'status' in v && ('can_act' in v || 'actions' in v));
}

/** A projection from an action/GET response body (several shapes tolerated). */
function projectionFrom(body) {
  if (!body || typeof body !== 'object') return null;
  for (const candidate of [body.projection, body.card, body.data, body]) if (isProjection(candidate)) return candidate;
  return null;
}

/** Past tense of a card action, for conflict notices and the history ("approved"). */
const PAST = {
  create: 'created the card',
  approve: 'approved',
  reject: 'rejected',
  withdraw: 'withdrew the card',
  expire: 'expired the card',
  respond: 'responded',
  close: 'closed the card',
  vote: 'voted',
  accept: 'accepted',
  decline: 'declined',
  block: 'blocked the task',
  unblock: 'unblocked the task',
  complete: 'completed the task',
  reassign: 'reassigned the task',
  cancel: 'cancelled the card',
  submit: 'submitted',
  due: 'marked the task overdue',
};

export function pastTense(action) {
  const a = String(action || 'update');
  return PAST[a] || `${a.replace(/e$/, '')}ed`;
}

function whenText(at) {
  if (at === undefined || at === null || at === '') return '';
  if (typeof at === 'number') return formatClock(at);
  const parsed = Date.parse(at);
  return Number.isNaN(parsed) ? String(at) : formatClock(parsed);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when the browser is online (at once when it is), or after `ms`. */
function online(ms) {
  if (navigator.onLine) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    window.addEventListener('online', done);
  });
}

/** An action request that got no answer (network, timeout) or a server failure: safe to
 *  repeat with the same action_id (the server answers a repeat with the first result). */
function retryable(err) {
  if (!err) return false;
  if (err.status === undefined) return true; // fetch failed / timed out: no answer at all
  return err.status >= 500 || err.status === 429;
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
  /**
   * `api`: http.Api with the user's token; `me`: the viewer's uid; `names`: uid -> display
   * name; `people`: [{uid, name}] (pickers).
   */
  constructor(api, me, { names = new Map(), people = [] } = {}) {
    this.api = api;
    this.me = me;
    this.names = names;
    this.people = people;
    /** message id -> CardView */
    this.views = new Map();
    /** Set once the server says it has no /cards endpoints: use local projections. */
    this.cardsApiMissing = false;
  }

  /** A display name: "You" for the viewer, the demo name, else the uid. */
  name(uid) {
    if (!uid) return 'Someone';
    if (uid === this.me) return 'You';
    if (uid === 'system') return 'The server';
    return this.names.get(uid) || uid;
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

  /** The store was replaced (a new X-Magpie-Epoch): versions restart, so the next
   *  projection of every card replaces the shown one whatever its version. */
  reset() {
    for (const view of this.views.values()) view.epochReset = true;
  }

  /** The message's extension changed: re-project and repaint that card only. */
  refresh(message) {
    const view = this.views.get(String(message.messageID));
    if (!view) return;
    view.message = message;
    view.refresh();
  }

  /** The viewer's projection carried by the message's extension (sync rows), or null. */
  embeddedProjection(message) {
    const extra = message.remoteExtra && message.remoteExtra.extra;
    const card = extra && extra.card;
    return isProjection(card) ? card : null;
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

  /** GET /cards/{id} (the per-viewer projection); null when unavailable, {missing: true}
   *  when the server has no such card (not a card of the cards service). */
  async fetchProjection(message) {
    if (this.cardsApiMissing || !message.messageID) return null;
    try {
      return projectionFrom(await this.api.get(`/cards/${encodeURIComponent(message.messageID)}`));
    } catch (err) {
      if (err.status === 404 && /no such endpoint/i.test(err.message)) this.cardsApiMissing = true;
      else if (err.status === 404) return { missing: true };
      else console.warn('[magpie] card projection failed', err);
      return null;
    }
  }

  /** POST /cards/{id}/actions; resolves to the body, rejects with HttpError (409 included). */
  postAction(message, body) {
    return this.api.post(`/cards/${encodeURIComponent(message.messageID)}/actions`, body);
  }

  /** A `cardEphemeral` CMD (this user's answer to an action): show it under its card. */
  ephemeral(param) {
    const view = this.views.get(String(param.message_id_str || param.message_id || ''));
    if (view) view.showEphemeral(param);
  }

  /** The card's operation log, oldest first: GET /cards/{id}/ops (user token). */
  async fetchHistory(message) {
    const body = await this.api.get(`/cards/${encodeURIComponent(String(message.messageID))}/ops?limit=200`);
    if (Array.isArray(body)) return body;
    for (const key of ['data', 'ops', 'history', 'rows']) if (body && Array.isArray(body[key])) return body[key];
    return [];
  }
}

export class CardView {
  constructor(ctrl, message) {
    this.ctrl = ctrl;
    this.message = message;
    this.projection = ctrl.embeddedProjection(message) || ctrl.localProjection(message);
    this.pending = null; // {action, params, actionId}
    this.draft = {}; // the renderer's scratch state (typed text, selections, open prompts)
    this.fetching = null;
    this.fetchAgain = false;
    this.notOnServer = false; // GET /cards said 404: a card type the server does not run
    this.epochReset = false; // the store was replaced: take the next projection as it is
    this.historyOpen = false;
    this.leaveTimer = null;
    this.ephemeralTimer = null;
    this.ephemeralSeen = new Set(); // action_ids whose ephemeral answer was shown
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
    this.ephemeralEl = h('div', { class: 'card-ephemeral', role: 'status', hidden: true });
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
      this.ephemeralEl,
      h('div', { class: 'card-meta' }, this.historyBtn, this.versionEl),
      this.historyEl,
    );
  }

  ui() {
    const offered = new Set(normalizeActions(this.projection.actions).map((a) => a.name));
    return {
      me: this.ctrl.me,
      name: (uid) => this.ctrl.name(uid),
      fullName: (uid) => this.ctrl.names.get(uid) || uid,
      people: this.ctrl.people,
      pending: this.pending,
      draft: this.draft,
      can: (action) => Boolean(this.projection.can_act) && offered.has(action),
      act: (action, params) => this.act(action, params),
      repaint: () => this.paint(true),
      // Only the message's own data so far; the server's projection is on its way.
      loading: Boolean(this.projection.local) && !this.notOnServer && !this.ctrl.cardsApiMissing,
    };
  }

  /** Draw the current projection (in place; `animate` runs the height/fade transitions). */
  paint(animate = true) {
    const p = this.projection;
    const renderer = rendererFor(this.message, p);
    const payload = payloadOf(this.message);
    const status = p.status || 'pending';
    const ui = this.ui();
    swapClass(this.el, 'card--tone-', toneOf(status));
    swapClass(this.el, 'card--status-', statusSlug(status));
    this.el.classList.toggle('card--placeholder', Boolean(renderer.isPlaceholder));
    this.el.classList.toggle('is-pending', Boolean(this.pending));
    this.el.dataset.status = status;
    this.el.dataset.version = String(p.version || 0);
    this.el.dataset.canAct = p.can_act ? '1' : '0';
    this.el.dataset.cardType = String(p.type ?? '');
    this.kindEl.textContent = humanize(p.type || 'card');
    const title = renderer.title ? renderer.title(payload, p) : p.title || (payload.card && payload.card.title) || '';
    this.titleEl.textContent = title;
    this.badgeText.textContent = statusLabel(status);
    morphHeight(this.body, () => morphChildren(this.body, renderer(this.message, p, ui)), animate);
    this.paintActions(p, renderer, ui, animate);
    this.historyBtn.hidden = Boolean(p.local);
    this.versionEl.textContent = p.version ? `v${p.version}` : '';
  }

  /** The bar's buttons: the projection's actions the renderer does not offer in its body. */
  barActions(p, renderer, ui) {
    if (!p.can_act || renderer.hideActionBar) return [];
    const out = [];
    for (const a of normalizeActions(p.actions)) {
      const extra = renderer.button ? renderer.button(a.name, p, ui) : {};
      if (extra === null) continue;
      out.push({ ...a, ...(extra || {}) });
    }
    return out;
  }

  paintActions(p, renderer, ui, animate) {
    const actions = this.barActions(p, renderer, ui);
    const outcome = renderer.outcome ? renderer.outcome(p, ui) : defaultOutcome(p);
    this.outcomeEl.textContent = outcome || '';
    this.outcomeEl.classList.toggle('is-note', !p.local && !p.terminal);
    if (actions.length > 0) {
      clearTimeout(this.leaveTimer);
      this.actionsEl.classList.remove('is-leaving');
      morphChildren(this.actionsEl, actions.map((a) => this.button(a, renderer)));
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
    for (const b of this.actionsEl.querySelectorAll('button')) b.disabled = true;
    clearTimeout(this.leaveTimer);
    this.leaveTimer = setTimeout(() => {
      this.actionsEl.replaceChildren();
      this.actionsEl.classList.remove('is-leaving');
      this.foot.hidden = !this.outcomeEl.textContent;
    }, LEAVE_MS);
  }

  button(a, renderer) {
    const pendingHere = this.pending && this.pending.action === a.name;
    const style = a.style || (DANGER.test(a.name) ? 'danger' : 'primary');
    return h(
      'button',
      {
        type: 'button',
        class: `btn btn--${style}${a.minor ? ' card-action--minor' : ''}${pendingHere ? ' is-pending' : ''}`,
        dataset: { action: a.name, key: a.name },
        disabled: Boolean(this.pending) || Boolean(a.disabled),
        'aria-busy': pendingHere ? 'true' : null,
        title: a.hint || null,
        onclick: () => this.clicked(a.name, renderer),
      },
      h('span', { class: 'spinner', 'aria-hidden': 'true' }),
      h('span', { class: 'btn-label' }, a.label),
    );
  }

  /** A bar button: the renderer supplies the parameters (or opens its own prompt). */
  clicked(action, renderer) {
    if (this.pending) return;
    const params = renderer.params ? renderer.params(action, this.projection, this.ui()) : {};
    if (params === null) return;
    this.act(action, params || {});
  }

  /** Bring the card up to date: the projection of the newest sync row, else GET /cards/{id}. */
  async refresh() {
    if (this.pending) return; // the action's answer repaints (and refreshes again)
    const embedded = this.ctrl.embeddedProjection(this.message);
    if (embedded || this.notOnServer) {
      this.show(embedded || this.ctrl.localProjection(this.message));
      return;
    }
    if (this.fetching) {
      this.fetchAgain = true;
      return this.fetching;
    }
    this.fetching = (async () => {
      do {
        this.fetchAgain = false;
        const fetched = await this.ctrl.fetchProjection(this.message);
        if (this.pending) return;
        if (fetched && fetched.missing) this.notOnServer = true;
        this.show(this.ctrl.embeddedProjection(this.message) || (fetched && !fetched.missing ? fetched : this.ctrl.localProjection(this.message)));
      } while (this.fetchAgain);
    })().finally(() => {
      this.fetching = null;
    });
    return this.fetching;
  }

  /** Paint `next` when it is newer than what is shown. */
  show(next) {
    if (!this.isNewer(next)) return;
    this.epochReset = false;
    this.projection = next;
    this.paint(true);
    if (this.historyOpen) this.loadHistory();
  }

  /** Whether `next` should replace what is shown (a newer card version, or real vs local). */
  isNewer(next) {
    const shown = this.projection;
    if (!next) return false;
    if (shown.local || this.epochReset) return true;
    if (next.local) return false;
    return (next.version || 0) > (shown.version || 0);
  }

  async act(action, params = {}, { confirm = false } = {}) {
    if (this.pending) return;
    const before = this.projection;
    const renderer = rendererFor(this.message, before);
    this.pending = { action, params, actionId: uuid() };
    this.hideNotice();
    const optimistic = renderer.optimistic ? renderer.optimistic(before, action, params, this.ctrl.me) : null;
    this.projection = optimistic ? { ...before, ...optimistic } : before;
    this.paint(true);
    const body = { action, params, action_id: this.pending.actionId, base_version: before.version || 0 };
    if (confirm) body.confirm = true;
    try {
      const answer = await this.post(body);
      this.pending = null;
      const next = projectionFrom(answer);
      // A callback that answered without a change (only an ephemeral note, e.g. "the end date
      // is before the start date") leaves the card as it was: keep what the viewer typed.
      if (!(answer && answer.changed === false)) this.draft = {};
      this.projection = next && (next.version || 0) >= (before.version || 0) ? next : before;
      this.paint(true);
      if (answer && answer.ephemeral) this.showEphemeral({ ...answer.ephemeral, action, action_id: body.action_id });
    } catch (err) {
      this.pending = null;
      this.rollback(before, err, action, params);
    }
    if (this.historyOpen) this.loadHistory(); // the attempt is a row, applied or not
    this.refresh(); // a sync row newer than the answer may have arrived meanwhile
  }

  /** POST the action; a request without an answer is repeated with the same action_id. */
  async post(body) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.ctrl.postAction(this.message, body);
      } catch (err) {
        if (!retryable(err) || attempt >= RETRY_DELAYS_MS.length) throw err;
        console.warn(`[magpie] card action ${body.action} failed, retrying (${attempt + 1})`, err);
        await online(ONLINE_WAIT_MS);
        await sleep(RETRY_DELAYS_MS[attempt]);
      }
    }
  }

  rollback(before, err, action, params) {
    const conflict = err && err.status === 409 ? err.body || {} : null;
    const current = err && err.body && isProjection(err.body.current) ? err.body.current : null;
    this.projection = current && (current.version || 0) >= (before.version || 0) ? current : before;
    this.paint(true);
    if (conflict) this.showConflict(conflict, action, params);
    else this.showNotice(`Could not ${humanize(action).toLowerCase()}: ${(err && err.body && err.body.msg) || (err && err.message) || err}`, []);
  }

  /** The 409 notice: who won and when, and "… anyway" where the server allows it. */
  showConflict(conflict, action, params) {
    const mine = `your “${humanize(action)}”`;
    const winner = conflict.winner && typeof conflict.winner === 'object' ? conflict.winner : null;
    const at = whenText(conflict.at || (winner && winner.at));
    const reason = conflict.reason || '';
    let text;
    if (reason === 'expired') text = `The deadline has passed — ${mine} was not applied.`;
    else if (winner && ['stale', 'changed', 'closed', 'not_now', 'cas_conflict', ''].includes(reason)) {
      const who = winner.uid ? this.ctrl.name(winner.uid) : 'Someone';
      text = `${who} ${pastTense(winner.action)}${at ? ` at ${at}` : ''}, before ${mine} went through.`;
      if (conflict.can_confirm) text += ' It can still be applied.';
    } else {
      const msg = conflict.msg ? conflict.msg.replace(/^./, (c) => c.toUpperCase()) : 'The card changed';
      text = `${msg} — ${mine} was not applied.`;
    }
    const buttons = [];
    if (conflict.can_confirm) {
      buttons.push(
        h('button', { type: 'button', class: 'btn btn--primary btn--small', dataset: { confirm: action }, onclick: () => this.act(action, params, { confirm: true }) }, `${humanize(action)} anyway`),
      );
    }
    buttons.push(h('button', { type: 'button', class: 'btn btn--ghost btn--small', onclick: () => this.hideNotice() }, 'Dismiss'));
    this.showNotice(text, buttons, 'conflict', { winner: winner ? winner.uid || '' : '', reason });
  }

  showNotice(text, buttons, kind = 'error', data = {}) {
    swapClass(this.noticeEl, 'card-notice--', kind);
    Object.assign(this.noticeEl.dataset, { kind, ...data });
    setChildren(this.noticeEl, h('p', { class: 'card-notice-text' }, text), buttons.length ? h('div', { class: 'card-notice-actions' }, buttons) : null);
    this.noticeEl.hidden = false;
  }

  hideNotice() {
    this.noticeEl.hidden = true;
    this.noticeEl.replaceChildren();
    for (const key of ['kind', 'winner', 'reason']) delete this.noticeEl.dataset[key];
  }

  /** An answer for this viewer alone (the action's 200 or the CMD), once per action_id. */
  showEphemeral(answer) {
    const id = String(answer.action_id || '');
    if (id && this.ephemeralSeen.has(id)) return;
    if (id) this.ephemeralSeen.add(id);
    const text = typeof answer.text === 'string' ? answer.text : '';
    const blocks = answer.doc ? renderStaticBlocks(answer.doc, this.ui()) : [];
    if (!text && !blocks.length) return;
    setChildren(
      this.ephemeralEl,
      h('span', { class: 'card-ephemeral-who' }, 'Only you can see this'),
      text ? h('p', { class: 'card-ephemeral-text' }, text) : null,
      blocks.length ? h('div', { class: 'card-ephemeral-doc card-document' }, blocks) : null,
      h('button', { type: 'button', class: 'link-button card-ephemeral-dismiss', onclick: () => this.hideEphemeral() }, 'Dismiss'),
    );
    this.ephemeralEl.dataset.action = String(answer.action || '');
    this.ephemeralEl.dataset.actionId = id;
    this.ephemeralEl.hidden = false;
    clearTimeout(this.ephemeralTimer);
    this.ephemeralTimer = setTimeout(() => this.hideEphemeral(), EPHEMERAL_MS);
  }

  hideEphemeral() {
    clearTimeout(this.ephemeralTimer);
    this.ephemeralEl.hidden = true;
    this.ephemeralEl.replaceChildren();
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
      const rows = ops.map((op) => historyRow(op, this.projection, (uid) => this.ctrl.name(uid)));
      morphChildren(this.historyEl, ops.length ? h('ol', { class: 'card-history-list' }, rows) : h('p', { class: 'card-history-empty' }, 'No changes yet.'));
    } catch (err) {
      setChildren(this.historyEl, h('p', { class: 'card-history-empty' }, `History unavailable (${(err.body && err.body.msg) || err.message || err}).`));
    }
  }
}

/** Statuses in which a card still waits for someone (no outcome line by default). */
const OPEN_STATUSES = new Set(['pending', 'open', 'active', 'in_progress', 'todo', 'doing']);

/**
 * The line that replaces the buttons: the projection's `outcome`, else why the viewer cannot
 * act, else "<Status> by <who>" once the card left its open state.
 */
export function defaultOutcome(p) {
  if (p.outcome) return p.outcome;
  if (p.unavailable_reason) return p.unavailable_reason.replace(/^./, (c) => c.toUpperCase());
  const status = String(p.status || 'pending');
  if (OPEN_STATUSES.has(status.toLowerCase())) return '';
  const by = (p.updated_by && p.updated_by.uid) || p.decided_by || '';
  return `${humanize(status)}${by ? ` by ${by}` : ''}`;
}

/** What an op row's logged parameters add to its line ("“fine by me”", "for Bowling"). */
function paramsText(op, projection, name) {
  const params = op.params && typeof op.params === 'object' ? op.params : {};
  const action = op.action || op.operation;
  const quote = (s) => (s ? `“${s}”` : '');
  if ((action === 'approve' || action === 'reject') && params.comment) return quote(params.comment);
  if (action === 'block' && params.reason) return quote(params.reason);
  if (action === 'reassign' && Array.isArray(params.assignees)) return `to ${params.assignees.map(name).join(', ')}`;
  if (action === 'vote') {
    const chosen = Array.isArray(params.options) ? params.options : Number.isInteger(params.option) ? [params.option] : [];
    const labels = (projection && projection.state && projection.state.options) || [];
    if (chosen.length) return `for ${chosen.map((i) => labels[i] ?? `#${i + 1}`).join(', ')}`;
  }
  // Registered types: a comment or reason the actor typed, whatever the action's name.
  for (const key of ['comment', 'reason']) if (typeof params[key] === 'string' && params[key]) return quote(params[key]);
  return '';
}

/** Why an attempt was refused, in a few words (op row `code`). */
const REFUSALS = {
  stale: 'the card had changed',
  changed: 'the card had changed',
  closed: 'the card was closed',
  not_now: 'not possible then',
  expired: 'too late',
  not_allowed: 'not allowed',
  not_member: 'not a member',
  bad_params: 'invalid input',
  cas_conflict: 'busy, not applied',
};

/** One operation-log row: time, who, what, the status change and the result. */
export function historyRow(op, projection = null, name = (uid) => uid) {
  const uid = op.actor_uid ?? (op.actor && op.actor.uid) ?? (op.updated_by && op.updated_by.uid) ?? '';
  const actor = op.anonymous || (!uid && (op.action || op.operation) === 'vote') ? 'Anonymous voter' : uid ? name(uid) : '?';
  const action = op.action || op.operation || 'update';
  const result = op.result || 'applied';
  const applied = result === 'applied';
  const what = applied ? pastTense(action) : `tried to ${humanize(action).toLowerCase()}`;
  const before = op.status_before || '';
  const after = op.status_after || '';
  const change = applied && after && after !== before && before ? `${statusLabel(before)} → ${statusLabel(after)}` : '';
  const extra = applied ? paramsText(op, projection, name) : '';
  return h(
    'li',
    { class: `card-history-row result-${result}`, dataset: { opId: String(op.op_id ?? ''), key: `op-${op.op_id ?? ''}`, action, result } },
    h('time', { class: 'card-history-time' }, formatClock(op.created_at || op.at)),
    h(
      'span',
      { class: 'card-history-text' },
      h('span', { class: 'card-history-actor' }, actor),
      ' ',
      h('span', { class: 'card-history-what' }, what),
      extra ? [' ', h('span', { class: 'card-history-params' }, extra)] : null,
      change ? [' ', h('span', { class: 'card-history-change' }, change)] : null,
      !applied ? [' ', h('span', { class: 'card-history-result', title: op.detail || '' }, REFUSALS[op.code] || humanize(op.code || result).toLowerCase())] : null,
    ),
  );
}
