// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so
// names and log lines from the API cannot inject markup.

/** h('tag.class', {attrs}, ...children) */
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Appends children (nested arrays flattened, null and false skipped). */
export function put(el, ...children) { append(el, children); }

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function secs(s) {
  if (s === null || s === undefined) return '—';
  s = Number(s);
  if (s < 1) return `${s.toFixed(2)} s`;
  if (s < 90) return `${s.toFixed(1)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

export function time(t) {
  if (!t) return '—';
  const d = new Date(t);
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, d.toLocaleString());
}

export function ago(t) {
  if (!t) return '—';
  return `${secs((Date.now() - new Date(t).getTime()) / 1000)} ago`;
}

export function short(id) { return id ? String(id).slice(0, 10) : '—'; }

const STATUS = {
  succeeded: 'ok', running: 'run', failed: 'bad', interrupted: 'bad', cancelled: 'warn',
  incomplete: 'warn', skipped: 'none',
};
export function status(s) { return h(`span.badge.${STATUS[s] || 'none'}`, s); }
export function yesno(ok, yes = 'compliant', no = 'not compliant') {
  return ok ? h('span.badge.ok', yes) : h('span.badge.bad', no);
}

/** A table with a caption, in a focusable scroll region. */
export function table(caption, heads, rows, empty = 'Nothing yet.') {
  if (!rows.length) return h('p.empty', empty);
  const t = h('table',
    h('caption.visually-hidden', caption),
    h('thead', h('tr', heads.map((x) => {
      const [label, cls] = Array.isArray(x) ? x : [x, null];
      return h('th', { scope: 'col', class: cls }, label);
    }))),
    h('tbody', rows.map((r) => (r instanceof Node ? r : h('tr', r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', c))))))));
  // Each cell carries its column's name: on a phone the rows stack as cards (app.css).
  const labels = heads.map((x) => (Array.isArray(x) ? x[0] : x));
  for (const tr of t.tBodies[0].rows) {
    [...tr.cells].forEach((td, i) => { if (labels[i]) td.dataset.label = labels[i]; });
  }
  return h('div.table-wrap', { role: 'region', 'aria-label': caption, tabindex: 0 }, t);
}

export function num(v) { return h('td.num', v); }

/** Says something to screen readers. */
export function announce(text) {
  const live = document.getElementById('live');
  live.textContent = '';
  setTimeout(() => { live.textContent = text; }, 50);
}

/**
 * Asks before an action. `body` says what will happen. Resolves true on Confirm.
 */
export function confirm(title, body, yes = 'Confirm') {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  const text = document.getElementById('confirm-text');
  text.replaceChildren(...(Array.isArray(body) ? body : [body]).map((b) => (b instanceof Node ? b : h('p', b))));
  document.getElementById('confirm-yes').textContent = yes;
  d.returnValue = 'cancel';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    document.getElementById('confirm-no').focus();
  });
}

/** A page's heading, with optional breadcrumbs. */
export function heading(text, crumbs = []) {
  return [
    crumbs.length ? h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, crumbs.map(([label, href], i) => [
      i ? ' › ' : '', href ? h('a', { href }, label) : label])) : null,
    h('h1', { tabindex: -1 }, text),
  ].filter(Boolean);
}

export function errorBox(e) {
  return h('p.error', { role: 'alert', 'data-load-error': true }, `Could not load: ${e.message || e}`);
}
