// Magpie's browser demo: entry point (bundled by esbuild into src/magpie/web/static/app.js).

import { Api } from './http.js';
import { ChatApp } from './chat.js';
import { LoginView, clearSession, loadSession, saveSession } from './login.js';

// The card types (each module calls registerCard; docs/cards.md has their projections).
import './cards/approval.js';
import './cards/survey.js';
import './cards/task.js';
import './cards/vote.js';
// Any card whose projection carries a document (registered, business-defined types).
import './cards/document.js';

export { cardRenderers, registerCard } from './cards/registry.js';

async function demoUsers(api) {
  try {
    const users = await api.get('/demo/users', { auth: false });
    return Array.isArray(users) ? users : [];
  } catch (_err) {
    return []; // demo login is off on this server
  }
}

function startChat(root, session, people) {
  const api = new Api(session.api_base || '', session.token);
  const app = new ChatApp(root, session, api, people, () => {
    clearSession();
    location.reload(); // the SDK is a set of singletons: a fresh page is a fresh client
  });
  app.start();
}

async function boot() {
  const root = document.getElementById('app');
  const anon = new Api('', '');
  const people = await demoUsers(anon);
  const saved = loadSession();
  if (saved) {
    startChat(root, saved, people);
    return;
  }
  const login = new LoginView(anon, people, (session) => {
    saveSession(session);
    startChat(root, session, people);
  });
  root.replaceChildren(login.el);
}

boot().catch((err) => {
  console.error('[magpie] start failed', err);
  const root = document.getElementById('app');
  if (root) root.textContent = `Magpie could not start: ${err.message || err}`;
});
