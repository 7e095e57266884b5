// survey@1 (docs/cards.md section 3): an answer form for single / multiple / text questions
// while the viewer may respond, their own answers once given, the aggregated results for the
// creator and admins (the projection has them only for those), close for the creator.

import { h } from '../dom.js';
import { registerCard } from './registry.js';
import { at, deadlineText, description, metaLine, resultRow } from './parts.js';

/** The form's answers: the draft, started from the viewer's response (choices as lists). */
function answersOf(p, ui) {
  if (!ui.draft.answers) {
    const given = (p.my_response && p.my_response.answers) || {};
    const answers = {};
    for (const q of (p.state && p.state.questions) || []) {
      const a = given[q.id];
      if (q.kind === 'text') answers[q.id] = typeof a === 'string' ? a : '';
      else answers[q.id] = Array.isArray(a) ? [...a] : Number.isInteger(a) ? [a] : [];
    }
    ui.draft.answers = answers;
  }
  return ui.draft.answers;
}

function answered(q, value) {
  return q.kind === 'text' ? Boolean(String(value || '').trim()) : Array.isArray(value) && value.length > 0;
}

function choiceInput(q, i, answers, p, ui, enabled) {
  const picked = answers[q.id] || [];
  const type = q.kind === 'single' ? 'radio' : 'checkbox';
  return h(
    'label',
    { class: `survey-choice${picked.includes(i) ? ' is-on' : ''}`, dataset: { key: `${q.id}-${i}` } },
    h('input', {
      type,
      name: `survey-${p.message_id_str || ''}-${q.id}`,
      value: String(i),
      checked: picked.includes(i),
      disabled: !enabled,
      onchange: (e) => {
        const list = answers[q.id] || [];
        if (type === 'radio') answers[q.id] = [i];
        else answers[q.id] = e.target.checked ? [...list, i].sort((a, b) => a - b) : list.filter((x) => x !== i);
        ui.draft.missing = (ui.draft.missing || []).filter((id) => id !== q.id);
        ui.repaint();
      },
    }),
    h('span', {}, q.options[i]),
  );
}

function questionBlock(q, n, answers, p, ui, enabled) {
  const missing = (ui.draft.missing || []).includes(q.id);
  const body =
    q.kind === 'text'
      ? h(
          'textarea',
          {
            class: 'card-input survey-text',
            rows: '2',
            maxlength: String(q.max_length || 500),
            placeholder: 'Your answer',
            'aria-label': q.prompt,
            disabled: !enabled,
            dataset: { key: `${q.id}-text` },
            oninput: (e) => {
              answers[q.id] = e.target.value;
              if (missing && e.target.value.trim()) {
                ui.draft.missing = ui.draft.missing.filter((id) => id !== q.id);
                ui.repaint();
              }
            },
          },
          answers[q.id] || '',
        )
      : h('div', { class: 'survey-choices' }, q.options.map((_, i) => choiceInput(q, i, answers, p, ui, enabled)));
  return h(
    'fieldset',
    { class: `survey-question${missing ? ' is-missing' : ''}`, dataset: { key: `q-${q.id}`, question: q.id } },
    h('legend', { class: 'survey-prompt' }, h('span', { class: 'survey-num' }, `${n + 1}`), q.prompt, q.required === false ? h('small', {}, ' optional') : null),
    body,
    missing ? h('p', { class: 'survey-missing' }, 'Please answer this question.') : null,
  );
}

function answerText(q, a) {
  if (q.kind === 'text') return a ? String(a) : '—';
  const list = Array.isArray(a) ? a : Number.isInteger(a) ? [a] : [];
  return list.length ? list.map((i) => q.options[i]).join(', ') : '—';
}

function myAnswers(p, questions) {
  const given = p.my_response.answers || {};
  return h(
    'div',
    { class: 'survey-mine', dataset: { key: 'mine' } },
    h('p', { class: 'card-section-title' }, `Your answers · ${at(p.my_response.at)}`),
    h(
      'dl',
      { class: 'survey-mine-list' },
      questions.map((q) => [h('dt', { dataset: { key: `dt-${q.id}` } }, q.prompt), h('dd', { dataset: { key: `dd-${q.id}` } }, answerText(q, given[q.id]))]),
    ),
  );
}

function results(p, questions, ui) {
  const s = p.state;
  const byId = new Map(s.results.map((r) => [r.id, r]));
  const total = s.respondents || 0;
  return h(
    'div',
    { class: 'survey-results', dataset: { key: 'results' } },
    h('p', { class: 'card-section-title' }, `Results · ${total} ${total === 1 ? 'response' : 'responses'}`),
    questions.map((q) => {
      const r = byId.get(q.id) || {};
      const inner =
        q.kind === 'text'
          ? (r.answers || []).length
            ? h('ul', { class: 'survey-texts' }, r.answers.map((a, i) => h('li', { dataset: { key: `${a.uid}-${i}` } }, h('strong', {}, ui.name(a.uid)), ` ${a.text}`)))
            : h('p', { class: 'card-hint' }, 'No answers yet.')
          : h('ul', { class: 'result-list' }, q.options.map((label, i) => resultRow(label, (r.counts || [])[i] || 0, total, { key: `${q.id}-${i}`, top: total > 0 && (r.counts || [])[i] === Math.max(...(r.counts || [0])) })));
      return h('div', { class: 'survey-result', dataset: { key: `r-${q.id}`, question: q.id } }, h('p', { class: 'survey-result-prompt' }, q.prompt), inner);
    }),
  );
}

function renderSurvey(message, p, ui) {
  const s = { questions: [], respondents: 0, ...(p.state || {}) };
  const canRespond = ui.can('respond');
  const answers = answersOf(p, ui);
  const closes = p.status === 'open' ? deadlineText('Closes', s.closes_at) : null;
  const count = `${s.respondents} ${s.respondents === 1 ? 'response' : 'responses'}`;
  return h(
    'div',
    { class: 'card-survey' },
    description(p),
    metaLine([
      `${s.questions.length} ${s.questions.length === 1 ? 'question' : 'questions'}`,
      count,
      p.my_response && canRespond ? `you answered at ${at(p.my_response.at)}` : '',
      s.final ? 'Answers are final' : '',
      closes,
    ]),
    canRespond ? h('form', { class: 'survey-form', dataset: { key: 'form' }, onsubmit: (e) => e.preventDefault() }, s.questions.map((q, n) => questionBlock(q, n, answers, p, ui, !ui.pending))) : null,
    !canRespond && p.my_response ? myAnswers(p, s.questions) : null,
    Array.isArray(s.results) ? results(p, s.questions, ui) : null,
  );
}

function outcome(p) {
  const s = p.state || {};
  if (p.status === 'closed') return `Closed with ${s.respondents || 0} ${s.respondents === 1 ? 'response' : 'responses'}`;
  if (p.my_response) return `You responded at ${at(p.my_response.at)}${s.final ? ' — thanks!' : ''}`;
  if (p.outcome) return p.outcome;
  return p.unavailable_reason ? p.unavailable_reason.replace(/^./, (c) => c.toUpperCase()) : '';
}

/** The respond parameters, or null (and the missing questions marked) when incomplete. */
function respondParams(p, ui) {
  const questions = (p.state && p.state.questions) || [];
  const answers = answersOf(p, ui);
  const missing = questions.filter((q) => q.required !== false && !answered(q, answers[q.id])).map((q) => q.id);
  if (missing.length) {
    ui.draft.missing = missing;
    ui.repaint();
    return null;
  }
  const out = {};
  for (const q of questions) {
    const a = answers[q.id];
    if (!answered(q, a)) continue;
    out[q.id] = q.kind === 'text' ? String(a).trim() : q.kind === 'single' ? a[0] : [...a];
  }
  return { answers: out };
}

registerCard('survey', renderSurvey, {
  outcome,
  button: (action, p) => {
    if (action === 'close') return { minor: true, label: 'Close survey' };
    if (action === 'respond') return { label: p.my_response ? 'Update answers' : 'Submit answers' };
    return {};
  },
  params: (action, p, ui) => (action === 'respond' ? respondParams(p, ui) : {}),
});
