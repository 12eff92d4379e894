// The console's shell: login, navigation and the hash router. Each page is
// a module exporting `render(main, params, ctx)`; `ctx.signal` is aborted
// when the user leaves the page (stops its polling and event streams).

import { token, whenRefused, get, Refused } from './api.js';
import { errorBox } from './ui.js';

const PAGES = {
  dashboard: () => import('./dashboard.js'),
  resources: () => import('./resources.js'),
  resource: () => import('./resources.js'),
  point: () => import('./point.js'),
  jobs: () => import('./jobs.js'),
  job: () => import('./job.js'),
  vaults: () => import('./vaults.js'),
  replication: () => import('./replication.js'),
  drills: () => import('./drills.js'),
};

/** `#/a/b?x=1` → { page, args, query } */
function route() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(qs || '');
  const [first, ...rest] = parts;
  switch (first) {
    case undefined: return { page: 'dashboard', nav: 'dashboard', args: [], query };
    case 'resources': return rest.length
      ? { page: 'resource', nav: 'resources', args: rest, query }
      : { page: 'resources', nav: 'resources', args: [], query };
    case 'points': return { page: 'point', nav: 'resources', args: rest, query };
    case 'jobs': return rest.length
      ? { page: 'job', nav: 'jobs', args: rest, query }
      : { page: 'jobs', nav: 'jobs', args: [], query };
    default: return PAGES[first]
      ? { page: first, nav: first, args: rest, query }
      : { page: 'dashboard', nav: 'dashboard', args: [], query };
  }
}

const els = {
  login: document.getElementById('login'),
  form: document.getElementById('login-form'),
  input: document.getElementById('token'),
  error: document.getElementById('login-error'),
  page: document.getElementById('page'),
  nav: document.getElementById('nav'),
  logout: document.getElementById('logout'),
};

let current = null;

function showLogin(message) {
  if (current) current.abort();
  current = null;
  els.page.replaceChildren();
  els.nav.hidden = true;
  els.logout.hidden = true;
  els.login.hidden = false;
  els.error.textContent = message || '';
  document.title = 'Sign in · Lifeboat console';
  els.input.value = '';
  els.input.focus();
}

whenRefused(() => showLogin('The token was refused: check the api-token file of the server and sign in again.'));

async function show() {
  if (!token.get()) return showLogin();
  els.login.hidden = true;
  els.nav.hidden = false;
  els.logout.hidden = false;
  const r = route();
  for (const a of els.nav.querySelectorAll('a')) {
    if (a.dataset.page === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (current) current.abort();
  const ctl = new AbortController();
  current = ctl;
  const main = document.createElement('div');
  main.dataset.page = r.page;
  const loading = document.createElement('p');
  loading.className = 'muted';
  loading.setAttribute('role', 'status');
  loading.textContent = 'Loading…';
  main.append(loading);
  els.page.replaceChildren(main);
  try {
    const mod = await PAGES[r.page]();
    await mod.render(main, r, { signal: ctl.signal, page: r.page });
    loading.remove();
    if (ctl.signal.aborted) return;
    const h1 = main.querySelector('h1');
    document.title = `${h1 ? h1.textContent : 'Lifeboat'} · Lifeboat console`;
    if (h1 && !show.first) h1.focus();
    show.first = false;
    main.dataset.ready = 'true';
  } catch (e) {
    if (e instanceof Refused || ctl.signal.aborted) return;
    loading.remove();
    main.append(errorBox(e));
    main.dataset.ready = 'true';
  }
}
show.first = true;

els.form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = els.input.value.trim();
  if (!t) return;
  token.set(t);
  try {
    await get('/api/v1/plans');
  } catch (e) {
    if (!(e instanceof Refused)) { els.error.textContent = `The server did not answer: ${e.message}`; }
    return;
  }
  els.input.value = '';
  show.first = false;
  show();
});

els.logout.addEventListener('click', () => {
  token.clear();
  showLogin('Signed out.');
});

window.addEventListener('hashchange', show);
show();
