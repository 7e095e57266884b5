// The generic renderer of card documents (docs/cards.md sections 10-13): any card whose
// projection carries a `document` — a registered (business-defined) type — is drawn from its
// blocks and elements, without knowing the type. The built-in types keep their renderers
// (their projections have `document: null`).
//
// The shell (card.js) still owns what every card shares: the status badge and tone, pending
// state, rollback, the 409 conflict notice with its "… anyway" confirm, the history panel.
// This renderer draws the blocks; a button sends its action with `params` = its `value` plus
// every input of its form by `name` (empty optional inputs left out), after its confirm
// dialog if it has one. A button is enabled only when the projection offers its action to
// this viewer (else disabled, with `unavailable[action]` as its hint): a document never grants
// anything. Typed input lives in the card's draft, so it survives repaints and a refusal.
//
// Safety: every string of a document is text (textContent), except `text` blocks and field
// values, which go through the sanitised Markdown renderer (markdown.js); image addresses are
// kept only when http(s) or same-origin relative ("/file/…").

import { h } from '../dom.js';
import { renderMarkdown } from '../markdown.js';
import { humanize, registerDocumentRenderer, statusLabel } from './registry.js';
import { at, bar, byName, person } from './parts.js';

/** An image address the page may load: http(s), or a path on this origin (not "//host"). */
export function safeImageUrl(url) {
  const s = String(url || '').trim();
  if (/^https?:\/\/[^\s]+$/i.test(s)) return s;
  if (/^\/(?!\/)[^\s\\]*$/.test(s)) return s;
  return '';
}

/** Whether a projection carries a card document to draw. */
export function hasDocument(p) {
  return Boolean(p && p.document && typeof p.document === 'object' && Array.isArray(p.document.blocks));
}

/** A people block's state word -> the person-row tone (parts.js). */
const PEOPLE_TONES = {
  approved: 'good', accepted: 'good', done: 'good', voted: 'good', agreed: 'good', yes: 'good', completed: 'good',
  rejected: 'bad', declined: 'bad', refused: 'bad', failed: 'bad', no: 'bad',
  pending: 'open', waiting: 'open', turn: 'open',
};

const STYLES = new Set(['primary', 'secondary', 'danger']);

function markdown(cls, text, key) {
  const el = h('div', { class: `doc-md ${cls}`, dataset: key ? { key } : null });
  renderMarkdown(el, String(text ?? ''));
  return el;
}

// --- layout blocks ---------------------------------------------------------------------------

const BLOCKS = {
  header: (b) => h('h3', { class: 'doc-header' }, String(b.text || '')),
  text: (b) => (b.plain ? h('p', { class: 'doc-text doc-text--plain' }, String(b.text || '')) : markdown('doc-text', b.text)),
  fields: (b) =>
    h(
      'dl',
      { class: 'doc-fields' },
      (b.fields || []).map((f, i) =>
        h('div', { class: 'doc-field', dataset: { key: `f${i}` } }, h('dt', { class: 'doc-field-label' }, String(f.label || '')), h('dd', { class: 'doc-field-value' }, markdown('doc-field-md', f.value))),
      ),
    ),
  divider: () => h('hr', { class: 'doc-divider' }),
  image: (b) => {
    const src = safeImageUrl(b.url);
    if (!src) return h('p', { class: 'doc-image-missing' }, String(b.alt || 'Image'));
    return h('img', { class: 'doc-image', src, alt: String(b.alt || ''), width: b.width || null, height: b.height || null, loading: 'lazy', referrerpolicy: 'no-referrer' });
  },
  context: (b) =>
    h(
      'p',
      { class: 'doc-context' },
      (b.elements || []).map((e, i) => {
        if (e.type === 'image') {
          const src = safeImageUrl(e.url);
          return src ? h('img', { class: 'doc-context-image', src, alt: String(e.alt || ''), referrerpolicy: 'no-referrer', dataset: { key: `c${i}` } }) : null;
        }
        return h('span', { class: 'doc-context-text', dataset: { key: `c${i}` } }, String(e.text || ''));
      }),
    ),
  progress: (b) => {
    const max = Number(b.max) > 0 ? Number(b.max) : 1;
    const value = Math.max(0, Number(b.value) || 0);
    const style = ['primary', 'success', 'warning', 'danger'].includes(b.style) ? b.style : 'primary';
    return h(
      'div',
      { class: `doc-progress doc-progress--${style}`, dataset: { value: String(value), max: String(max) } },
      h('div', { class: 'doc-progress-head' }, h('span', { class: 'doc-progress-label' }, String(b.label || '')), h('span', { class: 'doc-progress-count' }, `${value} / ${max}`)),
      bar(value / max, 'bar'),
    );
  },
};

/** The card's action names (offered, refused or counted): a people state naming one of them
 *  (`people_from: "listed"` gives the action each person took) reads as done ("Joined"). */
function actionNames(p) {
  const out = new Set(Object.keys((p && p.unavailable) || {}).concat(Object.keys((p && p.counts) || {})));
  for (const a of (p && Array.isArray(p.actions) && p.actions) || []) out.add(String(typeof a === 'string' ? a : a.action || a.name));
  return out;
}

function pastWord(action) {
  const s = humanize(action);
  return /e$/.test(s) ? `${s}d` : `${s}ed`;
}

function peopleBlock(b, p, ui) {
  const actions = actionNames(p);
  return h(
    'div',
    { class: 'doc-people' },
    b.label ? h('p', { class: 'card-section-title' }, String(b.label)) : null,
    h(
      'ul',
      { class: 'person-list' },
      (b.people || []).map((entry) => {
        const state = String(entry.state || '');
        const took = !PEOPLE_TONES[state] && actions.has(state);
        const note = entry.note ? String(entry.note) : took ? pastWord(state) : humanize(state);
        const row = person(String(entry.uid || ''), ui, { note, tone: PEOPLE_TONES[state] || (took ? 'good' : 'muted') });
        row.dataset.state = state;
        return row;
      }),
    ),
  );
}

// --- interactive elements ----------------------------------------------------------------------

/** The value an input shows: what the viewer typed (draft), else the element's `initial`. */
function valueOf(form, el) {
  const typed = form.values[el.name];
  if (typed !== undefined) return typed;
  if (el.initial !== undefined && el.initial !== null) return el.initial;
  return el.type === 'checkbox' ? false : el.type === 'select' && el.multiple ? [] : '';
}

function fieldWrap(form, el, control, { group = false } = {}) {
  const missing = form.missing.has(el.name);
  const label = el.label ? String(el.label) : humanize(el.name);
  const title = h(group ? 'legend' : 'span', { class: 'doc-label' }, label, el.required ? h('span', { class: 'doc-required', 'aria-hidden': 'true' }, ' *') : null);
  return h(
    group ? 'fieldset' : 'label',
    { class: `doc-input doc-input--${el.type}${missing ? ' is-missing' : ''}`, dataset: { key: `in-${el.name}`, name: el.name } },
    title,
    control,
    missing ? h('span', { class: 'doc-missing', role: 'alert' }, form.missing.get(el.name)) : null,
  );
}

const DATE_TYPES = { date: 'date', time: 'time', datetime: 'datetime-local' };

const INPUTS = {
  select: (form, el, disabled) => {
    const value = valueOf(form, el);
    if (el.multiple) {
      const chosen = new Set(Array.isArray(value) ? value.map(String) : []);
      const boxes = (el.options || []).map((o) =>
        h(
          'label',
          { class: 'doc-choice', dataset: { key: `o-${o.value}` } },
          h('input', {
            type: 'checkbox',
            name: el.name,
            value: String(o.value),
            checked: chosen.has(String(o.value)),
            disabled,
            onchange: (e) => {
              const now = new Set(Array.isArray(form.values[el.name]) ? form.values[el.name] : [...chosen]);
              if (e.target.checked) now.add(String(o.value));
              else now.delete(String(o.value));
              form.set(el.name, (el.options || []).map((x) => String(x.value)).filter((v) => now.has(v)));
            },
          }),
          h('span', {}, String(o.label ?? o.value)),
        ),
      );
      return fieldWrap(form, el, h('div', { class: 'doc-choices' }, boxes), { group: true });
    }
    const options = [h('option', { value: '', selected: value === '' }, el.placeholder ? String(el.placeholder) : 'Choose…')];
    for (const o of el.options || []) options.push(h('option', { value: String(o.value), selected: String(value) === String(o.value) }, String(o.label ?? o.value)));
    const select = h('select', { class: 'card-input doc-select', name: el.name, disabled, onchange: (e) => form.set(el.name, e.target.value) }, options);
    return fieldWrap(form, el, select);
  },
  date: (form, el, disabled) => {
    const input = h('input', {
      class: 'card-input doc-date',
      type: DATE_TYPES[el.mode] || 'date',
      name: el.name,
      value: String(valueOf(form, el) || ''),
      min: el.min || null,
      max: el.max || null,
      required: Boolean(el.required),
      disabled,
      oninput: (e) => form.set(el.name, e.target.value, false),
      onchange: (e) => form.set(el.name, e.target.value, false),
    });
    return fieldWrap(form, el, input);
  },
  input: (form, el, disabled) => {
    const value = String(valueOf(form, el) || '');
    const attrs = {
      class: 'card-input doc-text-input',
      name: el.name,
      placeholder: el.placeholder ? String(el.placeholder) : null,
      minlength: el.min_length ? String(el.min_length) : null,
      maxlength: String(el.max_length || 2000),
      required: Boolean(el.required),
      disabled,
      oninput: (e) => form.set(el.name, e.target.value, false),
    };
    const control = el.multiline ? h('textarea', { ...attrs, rows: '2' }, value) : h('input', { ...attrs, type: 'text', value });
    return fieldWrap(form, el, control);
  },
  checkbox: (form, el, disabled) =>
    h(
      'label',
      { class: 'doc-input doc-input--checkbox doc-choice', dataset: { key: `in-${el.name}`, name: el.name } },
      h('input', { type: 'checkbox', name: el.name, checked: Boolean(valueOf(form, el)), disabled, onchange: (e) => form.set(el.name, e.target.checked) }),
      h('span', {}, el.label ? String(el.label) : humanize(el.name)),
    ),
};

/** The params of a button press: its `value`, then its form's inputs by name. */
function collect(form, button) {
  const params = button.value && typeof button.value === 'object' ? { ...button.value } : {};
  for (const el of form.inputs) {
    const value = valueOf(form, el);
    if (el.type === 'checkbox') params[el.name] = Boolean(value);
    else if (Array.isArray(value)) {
      if (value.length) params[el.name] = value;
    } else if (String(value).trim() !== '') params[el.name] = el.type === 'input' ? String(value) : String(value);
  }
  return params;
}

/** What is wrong with the form's inputs (name -> message); empty when it can be sent. */
function problems(form) {
  const out = new Map();
  for (const el of form.inputs) {
    const value = valueOf(form, el);
    const empty = Array.isArray(value) ? value.length === 0 : el.type !== 'checkbox' && String(value ?? '').trim() === '';
    if (el.required && empty) out.set(el.name, 'Required');
    else if (el.type === 'input' && el.min_length && !empty && String(value).length < el.min_length) out.set(el.name, `At least ${el.min_length} characters`);
  }
  return out;
}

/** The in-card confirm dialog of a button (`confirm: {title, text, confirm, deny}`). */
function confirmBox(box, ui) {
  const c = box.confirm || {};
  const close = () => {
    ui.draft.confirm = null;
    ui.repaint();
  };
  return h(
    'div',
    { class: 'card-prompt doc-confirm', role: 'alertdialog', 'aria-label': String(c.title || 'Confirm'), dataset: { key: 'confirm', action: box.action } },
    h('p', { class: 'doc-confirm-title' }, String(c.title || 'Are you sure?')),
    c.text ? h('p', { class: 'doc-confirm-text' }, String(c.text)) : null,
    h(
      'div',
      { class: 'card-prompt-actions' },
      h('button', { type: 'button', class: `btn btn--${box.style === 'danger' ? 'danger' : 'primary'} btn--small`, dataset: { confirmYes: box.action }, onclick: () => {
        ui.draft.confirm = null;
        ui.act(box.action, box.params);
      } }, String(c.confirm || box.label || 'Confirm')),
      h('button', { type: 'button', class: 'btn btn--ghost btn--small', dataset: { confirmNo: box.action }, onclick: close }, String(c.deny || 'Cancel')),
    ),
  );
}

function docButton(form, b, p, ui) {
  const action = String(b.action || '');
  const style = STYLES.has(b.style) ? b.style : 'primary';
  const offered = ui.can(action);
  const pendingHere = Boolean(ui.pending && ui.pending.action === action);
  const hint = offered ? null : (p.unavailable && p.unavailable[action]) || p.unavailable_reason || null;
  const press = () => {
    if (ui.pending || !ui.can(action)) return;
    const wrong = problems(form);
    form.draft.missing = Object.fromEntries(wrong);
    if (wrong.size) {
      ui.repaint();
      return;
    }
    const params = collect(form, b);
    if (b.confirm) {
      ui.draft.confirm = { action, params, confirm: b.confirm, style, label: b.label, form: form.key };
      ui.repaint();
      return;
    }
    ui.act(action, params);
  };
  return h(
    'button',
    {
      type: 'button',
      class: `btn btn--${style} doc-button${pendingHere ? ' is-pending' : ''}`,
      dataset: { action, key: `b-${action}` },
      disabled: Boolean(ui.pending) || !offered,
      'aria-busy': pendingHere ? 'true' : null,
      title: hint,
      onclick: press,
    },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }),
    h('span', { class: 'btn-label' }, String(b.label || humanize(action))),
  );
}

/** The state of one form in this card's draft: typed values and the missing-input marks. */
function formState(key, elements, ui) {
  const forms = ui.draft.forms || (ui.draft.forms = {});
  const draft = forms[key] || (forms[key] = { values: {}, missing: {} });
  return {
    key,
    draft,
    values: draft.values,
    missing: new Map(Object.entries(draft.missing || {})),
    inputs: elements.filter((e) => e && e.type !== 'button' && e.name),
    set(name, value, repaint = true) {
      draft.values[name] = value;
      if (draft.missing[name]) {
        delete draft.missing[name];
        ui.repaint();
      } else if (repaint) ui.repaint();
    },
  };
}

function formBlock(b, index, p, ui) {
  const key = b.type === 'form' ? `form-${b.id || index}` : `actions-${b.id || index}`;
  const elements = Array.isArray(b.elements) ? b.elements : [];
  const form = formState(key, elements, ui);
  // A decided card keeps its inputs visible (disabled) but loses its buttons: the outcome
  // line says what happened, as on the built-in cards.
  const closed = Boolean(p.terminal);
  const disabled = Boolean(ui.pending) || closed || !elements.some((e) => e.type === 'button' && ui.can(String(e.action)));
  const inputs = [];
  const buttons = [];
  for (const el of elements) {
    if (!el || typeof el !== 'object') continue;
    if (el.type === 'button') {
      if (!closed) buttons.push(docButton(form, el, p, ui));
    } else if (INPUTS[el.type] && el.name) inputs.push(INPUTS[el.type](form, el, disabled));
  }
  const confirm = ui.draft.confirm && ui.draft.confirm.form === key ? confirmBox(ui.draft.confirm, ui) : null;
  return h(
    'div',
    { class: `doc-form doc-${b.type}`, role: b.type === 'form' ? 'form' : 'group', dataset: { form: String(b.id || index) } },
    inputs,
    confirm || (buttons.length ? h('div', { class: 'doc-buttons' }, buttons) : null),
  );
}

function block(b, index, p, ui) {
  if (!b || typeof b !== 'object') return null;
  let el = null;
  if (b.type === 'people') el = peopleBlock(b, p, ui);
  else if (b.type === 'form' || b.type === 'actions') el = formBlock(b, index, p, ui);
  else if (BLOCKS[b.type]) el = BLOCKS[b.type](b, ui);
  if (!el) return null;
  el.classList.add('doc-block');
  el.dataset.block = b.type;
  el.dataset.key = `${b.type}-${b.id || index}`;
  return el;
}

/** The read-only blocks of a document (an ephemeral answer's `doc`: no forms, no buttons). */
export function renderStaticBlocks(doc, ui) {
  const blocks = doc && Array.isArray(doc.blocks) ? doc.blocks : [];
  const p = { terminal: true };
  return blocks.filter((b) => b && b.type !== 'form' && b.type !== 'actions').map((b, i) => block(b, i, p, ui));
}

/** The body of a document card: its blocks in order. */
export function renderDocument(message, p, ui) {
  const blocks = hasDocument(p) ? p.document.blocks : [];
  return h('div', { class: 'card-document' }, blocks.map((b, i) => block(b, i, p, ui)));
}

/** Every action a document offers a button for (those stay out of the shell's action bar). */
function documentActions(p) {
  const out = new Set();
  for (const b of hasDocument(p) ? p.document.blocks : []) {
    for (const e of (b && Array.isArray(b.elements) && b.elements) || []) if (e && e.type === 'button') out.add(String(e.action));
  }
  return out;
}

/** The header block is the card's title when the document starts with one. */
renderDocument.title = (payload, p) => {
  const first = hasDocument(p) ? p.document.blocks[0] : null;
  if (first && first.type === 'header') return '';
  return p.title || (payload.card && payload.card.title) || '';
};
/** An action the projection offers but the document has no button for goes to the bar. */
renderDocument.button = (action, p) => (documentActions(p).has(action) ? null : {});
/**
 * The line that replaces the buttons: the projection's `outcome`; once the card is decided,
 * "<Status> by <who> at <time>" as on the built-in cards; else why this viewer cannot act.
 */
renderDocument.outcome = (p, ui) => {
  if (p.outcome) return p.outcome;
  const by = p.updated_by && p.updated_by.uid;
  if (p.terminal && by) return `${statusLabel(p.status)} by ${byName(by, ui)}${p.updated_at ? ` at ${at(p.updated_at)}` : ''}`;
  return p.unavailable_reason ? p.unavailable_reason.replace(/^./, (c) => c.toUpperCase()) : '';
};
renderDocument.isDocument = true;

registerDocumentRenderer(renderDocument);
