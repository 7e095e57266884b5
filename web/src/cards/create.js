// "New card": the composer's menu of card types and a small form per type, sent as
// POST /cards {channel_id, channel_type, card} with the user's token (docs/cards.md
// section 2). The card message then arrives like any other message (and its state with it).
//
// The form is a model object drawn with h() and morphed in place on every structural change
// (add an option, switch the mode), so typing is never interrupted.

import { h, morphChildren } from '../dom.js';
import { peoplePicker } from './parts.js';

/** The card types the menu offers, with a line each. */
export const CARD_KINDS = [
  { type: 'approval', label: 'Approval', hint: 'Ask people to approve or reject', icon: '✓' },
  { type: 'vote', label: 'Vote', hint: 'Options with live results', icon: '▤' },
  { type: 'survey', label: 'Survey', hint: 'A few questions to answer', icon: '?' },
  { type: 'task', label: 'Task', hint: 'Assign work with a due date', icon: '☰' },
];

const HOUR = 3600 * 1000;
/** Deadline presets (ms from now; 0 = none). */
const DEADLINES = [
  { value: '0', label: 'No deadline' },
  { value: String(HOUR), label: 'In 1 hour' },
  { value: String(24 * HOUR), label: 'In 1 day' },
  { value: String(3 * 24 * HOUR), label: 'In 3 days' },
  { value: String(7 * 24 * HOUR), label: 'In 1 week' },
];

const MODES = [
  { value: 'single', label: 'The first answer decides' },
  { value: 'all', label: 'Everyone must approve' },
  { value: 'quorum', label: 'A number of approvals' },
  { value: 'sequential', label: 'One after another, in order' },
];

const KINDS = [
  { value: 'single', label: 'Single choice' },
  { value: 'multiple', label: 'Multiple choice' },
  { value: 'text', label: 'Text' },
];

function blankQuestion() {
  return { prompt: '', kind: 'single', options: ['', ''], required: true };
}

function freshModel(type) {
  return {
    type,
    title: '',
    description: '',
    people: [], // approvers / assignees
    otherUids: '',
    mode: 'single',
    quorum: 2,
    deadline: type === 'task' ? String(24 * HOUR) : '0',
    options: ['', ''],
    multiple: false,
    anonymous: false,
    hidden: false,
    revote: true,
    questions: [blankQuestion()],
    final: false,
  };
}

function field(label, control, hint = '') {
  return h('label', { class: 'form-field' }, h('span', { class: 'form-label' }, label), control, hint ? h('span', { class: 'form-hint' }, hint) : null);
}

function select(name, options, value, onchange) {
  return h(
    'select',
    { class: 'form-input', name, onchange: (e) => onchange(e.target.value) },
    options.map((o) => h('option', { value: o.value, selected: o.value === value }, o.label)),
  );
}

function checkbox(name, label, checked, onchange) {
  return h('label', { class: 'form-check' }, h('input', { type: 'checkbox', name, checked, onchange: (e) => onchange(e.target.checked) }), h('span', {}, label));
}

export class CardFormDialog {
  /**
   * @param api     http.Api with the user's token
   * @param me      the viewer's uid
   * @param people  [{uid, name}] known users (the pickers)
   * @param names   uid -> display name
   */
  constructor({ api, me, people, names }) {
    this.api = api;
    this.me = me;
    this.people = people;
    this.names = names;
    this.model = null;
    this.channel = null;
    this.busy = false;
    this.error = '';
    this.form = h('form', { class: 'card-form', novalidate: true, onsubmit: (e) => this.submit(e) });
    this.el = h('dialog', { class: 'card-dialog', 'aria-label': 'New card', onclose: () => this.onClosed(), onclick: (e) => e.target === this.el && this.close() }, this.form);
  }

  /** Open the form for a card `type` in `channel` (an SDK Channel). */
  open(type, channel) {
    if (!this.el.isConnected) document.body.append(this.el);
    this.model = freshModel(type);
    this.channel = channel;
    this.error = '';
    this.busy = false;
    this.form.replaceChildren();
    this.render();
    this.el.showModal();
    const title = this.form.querySelector('input[name="title"]');
    if (title) title.focus();
  }

  close() {
    if (this.el.open) this.el.close();
  }

  onClosed() {
    this.model = null;
  }

  /** People who can be listed: the two of a direct chat, else every known user. */
  candidates() {
    const label = (uid) => (uid === this.me ? `${this.names.get(uid) || uid} (you)` : this.names.get(uid) || uid);
    if (this.channel && this.channel.channelType === 1) return [this.channel.channelID, this.me].map((uid) => ({ uid, name: this.names.get(uid) || uid, label: label(uid) }));
    const others = this.people.filter((p) => p.uid !== this.me);
    const mine = this.people.filter((p) => p.uid === this.me);
    return [...others, ...mine].map((p) => ({ ...p, label: label(p.uid) }));
  }

  set(key, value, rerender = false) {
    this.model[key] = value;
    if (rerender) this.render();
  }

  render() {
    const m = this.model;
    if (!m) return;
    const kind = CARD_KINDS.find((k) => k.type === m.type);
    morphChildren(
      this.form,
      h(
        'div',
        { class: 'card-form-inner', dataset: { type: m.type } },
        h('header', { class: 'card-form-head' }, h('span', { class: 'card-form-icon', 'aria-hidden': 'true' }, kind.icon), h('div', {}, h('h2', {}, `New ${kind.label.toLowerCase()}`), h('p', {}, kind.hint))),
        field('Title', h('input', { class: 'form-input', name: 'title', type: 'text', maxlength: '200', required: true, value: m.title, placeholder: this.placeholder(), oninput: (e) => this.set('title', e.target.value) })),
        field('Description', h('textarea', { class: 'form-input', name: 'description', rows: '2', maxlength: '2000', placeholder: 'Optional details', oninput: (e) => this.set('description', e.target.value) }, m.description)),
        this.typeFields(),
        this.error ? h('p', { class: 'form-error', role: 'alert' }, this.error) : null,
        h(
          'footer',
          { class: 'card-form-foot' },
          h('button', { type: 'button', class: 'btn btn--ghost', onclick: () => this.close() }, 'Cancel'),
          h('button', { type: 'submit', class: `btn btn--primary${this.busy ? ' is-pending' : ''}`, disabled: this.busy, dataset: { submit: m.type } }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('span', {}, `Create ${kind.label.toLowerCase()}`)),
        ),
      ),
    );
  }

  placeholder() {
    return { approval: 'e.g. Team offsite budget', vote: 'e.g. Next team event', survey: 'e.g. Friday lunch', task: 'e.g. Prepare the report' }[this.model.type];
  }

  peopleField(label) {
    const m = this.model;
    const candidates = this.candidates();
    if (!candidates.length) {
      return field(label, h('input', { class: 'form-input', name: 'people', type: 'text', value: m.otherUids, placeholder: 'uids, comma separated', oninput: (e) => this.set('otherUids', e.target.value) }));
    }
    const chosen = new Set(m.people);
    return h(
      'div',
      { class: 'form-field' },
      h('span', { class: 'form-label' }, label),
      peoplePicker(candidates, chosen, (uid) => this.set('people', chosen.has(uid) ? m.people.filter((u) => u !== uid) : [...m.people, uid], true), { label }),
    );
  }

  deadlineField(label) {
    return field(label, select('deadline', DEADLINES, this.model.deadline, (v) => this.set('deadline', v)));
  }

  typeFields() {
    const m = this.model;
    if (m.type === 'approval') {
      const n = m.people.length;
      return h(
        'div',
        { class: 'form-group' },
        this.peopleField('Approvers'),
        h(
          'div',
          { class: 'form-row' },
          field('Decision', select('mode', MODES, m.mode, (v) => this.set('mode', v, true))),
          m.mode === 'quorum'
            ? field('Approvals needed', h('input', { class: 'form-input', name: 'quorum', type: 'number', min: '1', max: String(Math.max(n, 1)), value: String(m.quorum), oninput: (e) => this.set('quorum', Number(e.target.value)) }))
            : null,
        ),
        this.deadlineField('Expires'),
      );
    }
    if (m.type === 'task') {
      return h('div', { class: 'form-group' }, this.peopleField('Assignees'), this.deadlineField('Due'));
    }
    if (m.type === 'vote') {
      return h(
        'div',
        { class: 'form-group' },
        h('div', { class: 'form-field' }, h('span', { class: 'form-label' }, 'Options'), this.optionList(m.options, (list) => this.set('options', list, true), 'option')),
        h(
          'div',
          { class: 'form-checks' },
          checkbox('multiple', 'Allow several choices', m.multiple, (v) => this.set('multiple', v)),
          checkbox('anonymous', 'Anonymous (no names shown)', m.anonymous, (v) => this.set('anonymous', v)),
          checkbox('hidden', 'Hide results until closed', m.hidden, (v) => this.set('hidden', v)),
          checkbox('revote', 'Voters may change their vote', m.revote, (v) => this.set('revote', v)),
        ),
        this.deadlineField('Closes'),
      );
    }
    // survey
    return h(
      'div',
      { class: 'form-group' },
      m.questions.map((q, n) => this.questionFields(q, n)),
      m.questions.length < 20 ? h('button', { type: 'button', class: 'btn btn--ghost btn--small form-add', dataset: { add: 'question' }, onclick: () => this.set('questions', [...m.questions, blankQuestion()], true) }, '+ Add question') : null,
      h('div', { class: 'form-checks' }, checkbox('final', 'Answers are final (no edits)', m.final, (v) => this.set('final', v))),
      this.deadlineField('Closes'),
    );
  }

  questionFields(q, n) {
    const m = this.model;
    const update = () => this.render();
    return h(
      'fieldset',
      { class: 'form-question', dataset: { key: `question-${n}` } },
      h(
        'legend',
        {},
        `Question ${n + 1}`,
        m.questions.length > 1 ? h('button', { type: 'button', class: 'link-button form-remove', 'aria-label': `Remove question ${n + 1}`, onclick: () => this.set('questions', m.questions.filter((x) => x !== q), true) }, 'Remove') : null,
      ),
      h('input', { class: 'form-input', name: `question-${n}-prompt`, type: 'text', maxlength: '500', placeholder: 'Ask something', value: q.prompt, oninput: (e) => (q.prompt = e.target.value) }),
      h(
        'div',
        { class: 'form-row' },
        select(`question-${n}-kind`, KINDS, q.kind, (v) => {
          q.kind = v;
          update();
        }),
        h('label', { class: 'form-check' }, h('input', { type: 'checkbox', name: `question-${n}-required`, checked: q.required, onchange: (e) => (q.required = e.target.checked) }), h('span', {}, 'Required')),
      ),
      q.kind === 'text'
        ? null
        : this.optionList(
            q.options,
            (list) => {
              q.options = list;
              update();
            },
            `question-${n}-option`,
          ),
    );
  }

  /** Editable option labels with add / remove (2 to 20). */
  optionList(options, onChange, name) {
    return h(
      'div',
      { class: 'form-options' },
      options.map((value, i) =>
        h(
          'div',
          { class: 'form-option', dataset: { key: `${name}-${i}` } },
          h('input', {
            class: 'form-input',
            name: `${name}-${i}`,
            type: 'text',
            maxlength: '200',
            placeholder: `Option ${i + 1}`,
            value,
            oninput: (e) => {
              options[i] = e.target.value;
            },
          }),
          options.length > 2 ? h('button', { type: 'button', class: 'link-button form-remove', 'aria-label': `Remove option ${i + 1}`, onclick: () => onChange(options.filter((_, j) => j !== i)) }, '✕') : null,
        ),
      ),
      options.length < 20 ? h('button', { type: 'button', class: 'btn btn--ghost btn--small form-add', dataset: { add: name }, onclick: () => onChange([...options, '']) }, '+ Add option') : null,
    );
  }

  /** The `card` definition of the form, or throws an Error with what is missing. */
  definition() {
    const m = this.model;
    const title = m.title.trim();
    if (!title) throw new Error('Give the card a title.');
    const card = { type: `${m.type}@1`, title };
    if (m.description.trim()) card.description = m.description.trim();
    const deadline = Number(m.deadline) ? Date.now() + Number(m.deadline) : 0;
    const people = this.candidates().length
      ? m.people
      : m.otherUids
          .split(/[\s,]+/)
          .map((s) => s.trim())
          .filter(Boolean);
    const labels = (list) => list.map((s) => s.trim()).filter(Boolean);
    if (m.type === 'approval') {
      if (!people.length) throw new Error('Pick at least one approver.');
      Object.assign(card, { approvers: people, mode: m.mode });
      if (m.mode === 'quorum') card.quorum = Math.max(1, Math.min(people.length, Number(m.quorum) || 1));
      if (deadline) card.expires_at = deadline;
    } else if (m.type === 'task') {
      if (!people.length) throw new Error('Pick at least one assignee.');
      card.assignees = people;
      if (deadline) card.due = deadline;
    } else if (m.type === 'vote') {
      const options = labels(m.options);
      if (options.length < 2) throw new Error('A vote needs at least two options.');
      Object.assign(card, { options, multiple: m.multiple, anonymous: m.anonymous, revote: m.revote, results: m.hidden ? 'closed' : 'live' });
      if (deadline) card.closes_at = deadline;
    } else {
      const questions = m.questions.map((q, n) => {
        const prompt = q.prompt.trim();
        if (!prompt) throw new Error(`Question ${n + 1} needs a text.`);
        const out = { id: `q${n + 1}`, kind: q.kind, prompt, required: q.required };
        if (q.kind !== 'text') {
          out.options = labels(q.options);
          if (out.options.length < 2) throw new Error(`Question ${n + 1} needs at least two options.`);
        }
        return out;
      });
      Object.assign(card, { questions, final: m.final });
      if (deadline) card.closes_at = deadline;
    }
    return card;
  }

  async submit(event) {
    event.preventDefault();
    if (this.busy || !this.model || !this.channel) return;
    let card;
    try {
      card = this.definition();
    } catch (err) {
      this.error = err.message;
      this.render();
      return;
    }
    this.busy = true;
    this.error = '';
    this.render();
    try {
      await this.api.post('/cards', { channel_id: this.channel.channelID, channel_type: this.channel.channelType, card });
      this.busy = false;
      this.close();
    } catch (err) {
      this.busy = false;
      this.error = (err.body && err.body.msg) || err.message || String(err);
      this.render();
    }
  }
}

/** The composer's "New card" menu: a button and a popover list of CARD_KINDS. */
export class NewCardMenu {
  constructor(onPick) {
    this.onPick = onPick;
    this.button = h(
      'button',
      { type: 'button', class: 'btn btn--ghost composer-new', 'aria-haspopup': 'menu', 'aria-expanded': 'false', title: 'New card', onclick: () => this.toggle() },
      h('span', { class: 'composer-new-plus', 'aria-hidden': 'true' }, '+'),
      h('span', { class: 'composer-new-text' }, 'Card'),
    );
    this.menu = h(
      'div',
      { class: 'new-card-menu', role: 'menu', hidden: true },
      CARD_KINDS.map((k) =>
        h(
          'button',
          { type: 'button', role: 'menuitem', class: 'new-card-item', dataset: { cardKind: k.type }, onclick: () => this.pick(k.type) },
          h('span', { class: `new-card-icon new-card-icon--${k.type}`, 'aria-hidden': 'true' }, k.icon),
          h('span', { class: 'new-card-text' }, h('strong', {}, k.label), h('small', {}, k.hint)),
        ),
      ),
    );
    this.el = h('div', { class: 'composer-new-wrap' }, this.button, this.menu);
    this.onDocClick = (e) => {
      if (!this.el.contains(e.target)) this.toggle(false);
    };
    this.onKey = (e) => {
      if (e.key === 'Escape') this.toggle(false);
    };
  }

  setEnabled(on) {
    this.button.disabled = !on;
    if (!on) this.toggle(false);
  }

  toggle(open = this.menu.hidden) {
    this.menu.hidden = !open;
    this.button.setAttribute('aria-expanded', String(open));
    if (open) {
      document.addEventListener('mousedown', this.onDocClick);
      document.addEventListener('keydown', this.onKey);
    } else {
      document.removeEventListener('mousedown', this.onDocClick);
      document.removeEventListener('keydown', this.onKey);
    }
  }

  pick(type) {
    this.toggle(false);
    this.onPick(type);
  }
}
