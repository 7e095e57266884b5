// The text composer: Enter sends, Shift+Enter starts a new line; "+ Card" opens the menu of
// card types (cards/create.js) when the page passes `onNewCard`.

import { h } from '../dom.js';
import { NewCardMenu } from '../cards/create.js';

/** Longest text the composer sends (the server's payload limit is far above it). */
const MAX_TEXT = 4000;

export class ComposerView {
  constructor(onSend, { onNewCard = null } = {}) {
    this.onSend = onSend;
    this.newCard = onNewCard ? new NewCardMenu(onNewCard) : null;
    this.input = h('textarea', {
      class: 'composer-input',
      rows: '1',
      placeholder: 'Write a message…',
      maxlength: String(MAX_TEXT),
      'aria-label': 'Message',
      onkeydown: (e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.submit();
        }
      },
      oninput: () => this.autosize(),
    });
    this.button = h('button', { class: 'btn btn--primary composer-send', type: 'submit', 'aria-label': 'Send' }, 'Send');
    this.el = h(
      'form',
      {
        class: 'composer',
        onsubmit: (e) => {
          e.preventDefault();
          this.submit();
        },
      },
      this.newCard ? this.newCard.el : null,
      this.input,
      this.button,
    );
    this.setEnabled(false);
  }

  setEnabled(on) {
    this.input.disabled = !on;
    this.button.disabled = !on;
    if (this.newCard) this.newCard.setEnabled(on);
  }

  focus() {
    this.input.focus();
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  submit() {
    const text = this.input.value.trim();
    if (!text || this.input.disabled) return;
    this.input.value = '';
    this.autosize();
    this.onSend(text);
  }
}
