// The card renderer registry: how card types plug into the page.
//
// A card message's payload is {"type": <custom content type>, "content": "<plain-text
// fallback>", "card": {...}}. The page shows it as a card shell (cards/card.js) that owns what
// every card shares — status colours, the action buttons the viewer may use, pending state,
// rollback and the 409 conflict prompt, the history panel — and asks the registry for the
// type-specific body:
//
//     cardRenderers[type] = (message, projection, ui) => Element
//
// `type` is looked up as the projection's `type` (e.g. "approval"), then `card.type` /
// `card.kind` of the payload, then the payload's numeric content type; nothing found -> the
// placeholder, which shows the `content` fallback. `projection` is the per-viewer view of the
// card (GET /cards/{message_id}: type, status, extra, version, can_act, actions,
// unavailable_reason, my_vote / my_response, ...; docs/cards.md section 4). `ui` offers:
//
//     ui.me                      the viewer's uid
//     ui.name(uid)               a display name ("You" for the viewer)
//     ui.fullName(uid)           the display name, also for the viewer
//     ui.people                  [{uid, name}] the demo users (pickers)
//     ui.act(action, params)     run an action with the shell's pending/rollback/409 handling
//     ui.pending                 {action, params} in flight, or null
//     ui.can(action)             whether projection.actions offers `action` now
//     ui.draft                   this card's scratch object (typed comments, selections, an
//                                open prompt); it survives repaints, cleared after a success
//     ui.repaint()               draw again (after changing ui.draft)
//     ui.loading                 only the message's own data so far (the projection is
//                                being fetched)
//
// A renderer is re-run on every state change; the shell morphs the new body into the old one
// (dom.js morph), so give repeated rows a `data-key` and CSS transitions run. It must show
// controls of its own (vote options, survey inputs) only while the projection offers the
// action. Optional properties of a renderer function:
//
//     renderer.title = (payload, projection) => 'Expense approval'   header text
//     renderer.optimistic = (projection, action, params) => projection'   shown while pending
//     renderer.outcome = (projection, ui) => 'Approved by bob'   the line that replaces the buttons
//     renderer.button = (action, projection, ui) => null | {label, disabled}   null: the body
//                       offers this action itself, leave it out of the action bar
//     renderer.params = (action, projection, ui) => params | null   the parameters of a bar
//                       click (null: the body collects input first, e.g. opens a prompt)
//     renderer.hideActionBar = true   the body renders all its controls itself
//
// A projection that carries a `document` (a registered, business-defined card type) is drawn
// by the generic document renderer (cards/document.js) unless a renderer is registered for
// its type.

import { h } from '../dom.js';
import { payloadOf } from '../convert.js';

/** type -> renderer. Register with registerCard(). */
export const cardRenderers = Object.create(null);

/** Add (or replace) the renderer of a card type (a string kind or a numeric content type). */
export function registerCard(type, renderer, options = {}) {
  if (typeof renderer !== 'function') throw new TypeError('a card renderer is a function (message, projection, ui) => Element');
  Object.assign(renderer, options);
  cardRenderers[String(type)] = renderer;
  return renderer;
}

/** Whether a message is a card: its payload carries a `card` object. */
export function isCard(message) {
  const payload = payloadOf(message);
  return Boolean(payload && payload.card && typeof payload.card === 'object');
}

/** The generic renderer of card documents (cards/document.js registers itself here). */
let documentRenderer = null;

/** Set the renderer used for any projection that carries a `document` (docs/cards.md §10). */
export function registerDocumentRenderer(renderer) {
  documentRenderer = renderer;
}

/**
 * The renderer for a card message and its projection: one registered for the projection's
 * type, else the document renderer when the projection carries a document (registered,
 * business-defined types), else one registered for the payload's type, else the placeholder.
 */
export function rendererFor(message, projection) {
  const payload = payloadOf(message);
  const card = payload.card || {};
  const named = (key) => (key !== undefined && key !== null && cardRenderers[String(key)]) || null;
  const own = named(projection && projection.type);
  if (own) return own;
  const doc = projection && projection.document;
  if (documentRenderer && doc && typeof doc === 'object' && Array.isArray(doc.blocks)) return documentRenderer;
  for (const key of [card.type, card.kind, payload.type]) if (named(key)) return named(key);
  return placeholderRenderer;
}

/** Unknown card type: the plain-text fallback the sender put in `content` (while the server's
 *  projection is still on its way — `ui.loading` — it says so: a registered type's document
 *  or a built-in renderer may follow). */
export function placeholderRenderer(message, projection, ui = {}) {
  const payload = payloadOf(message);
  const kind = (projection && projection.type) || (payload.card && (payload.card.type || payload.card.kind)) || payload.type;
  const text = typeof payload.content === 'string' && payload.content ? payload.content : '(no text)';
  return h(
    'div',
    { class: 'card-fallback' },
    h('p', { class: 'card-fallback-text' }, text),
    h('p', { class: 'card-fallback-note' }, ui.loading ? 'Loading the card…' : `This card type (${kind}) is not supported by this page yet.`),
  );
}
placeholderRenderer.hideActionBar = true;
placeholderRenderer.isPlaceholder = true;

/**
 * Status -> colour family of the shell (CSS class card--tone-<tone>): the scheme's "approved
 * shows a green mark", rejected red, expired / withdrawn grey. Unknown statuses are neutral.
 */
export const STATUS_TONES = {
  pending: 'open',
  open: 'open',
  active: 'open',
  in_progress: 'open',
  todo: 'open',
  doing: 'open',
  blocked: 'warn',
  approved: 'good',
  accepted: 'good',
  done: 'good',
  completed: 'good',
  closed: 'muted',
  rejected: 'bad',
  declined: 'bad',
  failed: 'bad',
  expired: 'muted',
  withdrawn: 'muted',
  cancelled: 'muted',
  canceled: 'muted',
  revoked: 'muted',
};

export function toneOf(status) {
  return STATUS_TONES[String(status || 'pending').toLowerCase()] || 'neutral';
}

/** Status words that read better than their humanized id. */
export const STATUS_LABELS = {
  todo: 'To do',
  doing: 'In progress',
};

/** The badge text of a status. */
export function statusLabel(status) {
  const s = String(status || 'pending');
  return STATUS_LABELS[s.toLowerCase()] || humanize(s);
}

/** "in_progress" -> "In progress". */
export function humanize(text) {
  const s = String(text || '').replace(/[_-]+/g, ' ').trim();
  return s ? s[0].toUpperCase() + s.slice(1) : '';
}
