// Replication: each rule's lag over time (a chart, from the server's
// in-memory samples) and its backlog now.

import { get } from './api.js';
import { h, put, heading, table, secs, bytes, num } from './ui.js';

function chart(el, hist) {
  const w = Math.max(280, el.clientWidth || 600);
  const xs = hist.samples.map((s) => new Date(s.t).getTime() / 1000);
  const data = [xs, hist.samples.map((s) => s.lag_p50_s), hist.samples.map((s) => s.lag_p99_s), hist.samples.map((s) => s.backlog_objects)];
  // eslint-disable-next-line no-undef
  return new uPlot({
    width: w, height: 240,
    series: [{}, { label: 'lag p50 (s)', stroke: '#0b4f8a', width: 2, points: { show: true } },
      { label: 'lag p99 (s)', stroke: '#a4161a', width: 2, points: { show: true } },
      { label: 'backlog (objects)', stroke: '#0b6b2e', width: 2, scale: 'n', points: { show: true } }],
    axes: [{}, { label: 'seconds' }, { side: 1, scale: 'n', label: 'objects', grid: { show: false } }],
    scales: {
      // At least the last 2 minutes, and lags from 0 up, so a new server's few samples read right.
      x: { time: true, range: () => [Math.min(xs[0], xs.at(-1) - 120), xs.at(-1) + 5] },
      y: { range: (_u, _min, max) => [0, Math.max(1, max || 0)] },
      n: { range: (_u, _min, max) => [0, Math.max(1, max || 0)] },
    },
  }, data, el);
}

export async function render(main, _r, { signal }) {
  const [rules, history] = await Promise.all([get('/api/v1/replication'), get('/api/v1/replication/history')]);
  if (signal.aborted) return;
  put(main, ...heading('Replication'),
    table('Replication rules now', ['Rule', 'From', 'To', 'Prefix', 'Deletes', 'Running', ['Lag p50', 'num'], ['Lag p99', 'num'], ['Backlog', 'num'], 'Last error'],
      rules.map((x) => [x.name, x.from, h('span.mono', x.to), x.prefix || '—', x.delete,
        x.running ? h('span.badge.ok', 'running') : h('span.badge.warn', 'not running'),
        num(secs(x.lag_p50_s)), num(secs(x.lag_p99_s)),
        num(x.backlog_objects === null ? '—' : `${x.backlog_objects} (${bytes(x.backlog_bytes)})`), x.last_error || '—']),
      'The file declares no replication rule.'));
  for (const hist of history) {
    const box = h('div.chart', { role: 'img', 'aria-label': `Lag of rule ${hist.name} over the last ${hist.samples.length} samples; newest p99 ${secs(hist.samples.at(-1)?.lag_p99_s)}` });
    put(main, h('h2', `Lag of ${hist.name}`),
      h('p.muted', `${hist.samples.length} sample${hist.samples.length === 1 ? '' : 's'}, taken every 10 s and when this page is opened, kept 2 hours in the server's memory.`), box);
    if (typeof uPlot !== 'undefined' && hist.samples.length) chart(box, hist);
  }
}
