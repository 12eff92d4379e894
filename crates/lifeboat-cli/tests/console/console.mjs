// Drives the Lifeboat web console in Debian's Chromium, headless, as a user
// would, and checks every page with axe-core (no serious or critical
// violation) at 1280 px and at 390 px.
//
//   node console.mjs PARAMS.json
//
// PARAMS: { base, token, shots, restoreTo, newFile, failedJob, plan, hold }:
// the server's children pause at `index-loaded` until HOLD/index-loaded.go
// exists (LIFEBOAT_TEST_PAUSE), so the first run is seen running, with its
// live progress, and is cancelled from the page.
// Prints a JSON summary on success. Never downloads a browser: CHROMIUM
// (default /usr/bin/chromium) is used.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const params = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { base, token, shots, restoreTo, newFile, failedJob, plan, hold, liveBucket, bucketTo, physicalJob } = params;
fs.mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lifeboat-console-chromium-'));

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 900 },
  timeout: 60_000,
});
const problems = [];
const summary = { pages: [], axe: {}, statuses_seen: [], shots: [], posts: [] };
let expect401 = false;
let expect400 = false;
let page;

async function axe(name) {
  const r = await page.evaluate(async (src) => {
    if (!window.axe) (0, eval)(src); // eslint-disable-line no-eval
    const res = await window.axe.run(document, { resultTypes: ['violations'] });
    return res.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  }, axeSource);
  const bad = r.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  summary.axe[name] = r.map((v) => `${v.impact}:${v.id}`);
  if (bad.length) problems.push(`axe on ${name}: ${JSON.stringify(bad)}`);
}

async function shot(name) {
  const file = path.join(shots, `${name}.png`);
  // No focus ring in the pictures (the heading takes the focus on each page).
  await page.evaluate(() => { if (document.activeElement?.tagName === 'H1') document.activeElement.blur(); });
  await page.screenshot({ path: file, fullPage: true });
  summary.shots.push(file);
}

async function ready(pageName) {
  await page.locator(`#page > [data-page="${pageName}"][data-ready="true"]`).waitFor();
  const err = page.locator('#page [data-load-error]');
  if (await err.count()) problems.push(`${pageName}: ${await err.first().textContent()}`);
}

async function visit(hash, pageName, name) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await ready(pageName);
  summary.pages.push(name);
  await axe(name);
  await shot(name);
}

async function waitStatus(want, timeout = 180_000) {
  const el = page.locator('#job-status');
  await el.waitFor();
  const t = Date.now();
  for (;;) {
    const s = await el.getAttribute('data-status');
    if (summary.statuses_seen.at(-1) !== s) summary.statuses_seen.push(s);
    if (s === want) return;
    if (s !== 'running') throw new Error(`the job ended ${s}, not ${want}: ${await page.locator('#job-error').textContent()}`);
    if (Date.now() - t > timeout) throw new Error(`the job is still ${s} after ${timeout} ms`);
    await page.waitForTimeout(100);
  }
}

try {
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expect401 && /401/.test(m.text())) return;
    if (expect400 && /400/.test(m.text())) return;
    problems.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    if (r.method() === 'POST') summary.posts.push(new URL(r.url()).pathname);
  });
  page.on('response', (r) => {
    if (r.status() === 401 && expect401) return;
    if (r.status() === 400 && expect400) return;
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });

  // The login form; the security headers are on the page.
  const resp = await page.goto(`${base}/`);
  const hd = resp.headers();
  for (const [k, v] of [['content-security-policy', "script-src 'self'"], ['x-frame-options', 'DENY'],
    ['x-content-type-options', 'nosniff'], ['referrer-policy', 'no-referrer']]) {
    if (!(hd[k] || '').includes(v)) problems.push(`header ${k}: ${hd[k]}`);
  }
  await page.locator('#login').waitFor();
  await axe('login');
  await shot('login');

  // A wrong token is refused.
  expect401 = true;
  await page.getByLabel('API token').fill('0'.repeat(64));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#login-error', { hasText: /token was refused/i }).waitFor();
  if (await page.evaluate(() => sessionStorage.getItem('lifeboat-token'))) problems.push('a refused token was kept');
  await shot('login-refused');
  expect401 = false;

  // The right one: the dashboard shows the resource a real backup made.
  await page.getByLabel('API token').fill(token);
  await page.keyboard.press('Enter');
  await ready('dashboard');
  if (page.url().includes(token)) problems.push('the token is in the URL');
  if (await page.evaluate((t) => Object.values(localStorage).some((v) => v.includes(t)), token)) problems.push('the token is in localStorage');
  await page.getByTestId('resource-data').waitFor();
  summary.exposure = (await page.getByTestId('exposure-shop').textContent()).trim();
  await page.getByText('Exposure per member').click();
  summary.member_exposure = (await page.getByRole('region', { name: 'RPO exposure of stack shop per site and member' }).textContent()).replace(/\s+/g, ' ').trim();
  summary.pages.push('dashboard');
  await axe('dashboard');
  await shot('dashboard');

  // Run the plan from the page: Escape on the confirmation starts nothing
  // (every POST that starts a run is counted; two are expected in all).
  await page.getByTestId(`run-${plan}`).click();
  const dialog = page.locator('dialog#confirm');
  await dialog.waitFor();
  if (!(await page.evaluate(() => document.activeElement.id === 'confirm-no'))) problems.push('the confirmation does not focus Cancel');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });

  // Confirmed: the run starts, held by the pause; its live progress shows; cancel it from the page.
  await page.getByTestId(`run-${plan}`).click();
  await dialog.waitFor();
  await page.locator('#confirm-yes').click();
  await ready('job');
  summary.cancelled_job = Number(page.url().split('#/jobs/')[1]);
  await page.locator('#job-progress progress, #job-progress p').first().waitFor();
  summary.live_progress = (await page.locator('#job-progress').textContent()).trim();
  await shot('job-running');
  await page.getByRole('button', { name: 'Cancel job…' }).click();
  await dialog.waitFor();
  summary.cancel_confirmation = (await dialog.textContent()).replace(/\s+/g, ' ').trim();
  await shot('confirm-cancel');
  await page.locator('#confirm-yes').click();
  await dialog.waitFor({ state: 'hidden' });
  fs.writeFileSync(path.join(hold, 'index-loaded.go'), '');
  await waitStatus('cancelled');
  await axe('job-cancelled');

  // Run it again, confirm, watch it complete.
  await page.evaluate(() => { location.hash = '#/'; });
  await ready('dashboard');
  await page.getByTestId(`run-${plan}`).click();
  await dialog.waitFor();
  summary.run_confirmation = (await dialog.textContent()).replace(/\s+/g, ' ').trim();
  await axe('confirm-run');
  await shot('confirm-run');
  await page.locator('#confirm-yes').click();
  await ready('job');
  summary.run_job = Number(page.url().split('#/jobs/')[1]);
  await waitStatus('succeeded');
  await axe('job');
  await shot('job');

  // Browse the new point and restore the new file.
  await page.getByTestId('job-point').click();
  await ready('point');
  summary.point_hash = new URL(page.url()).hash;
  const base_ = path.basename(newFile);
  await page.getByTestId(`entry-${base_}`).waitFor();
  summary.pages.push('point');
  await axe('point');
  await shot('point');
  await page.getByRole('button', { name: `Restore ${newFile}` }).click();
  if ((await page.locator('#restore-path').inputValue()) !== newFile) problems.push('the restore form did not take the file');
  await page.locator('#restore-to').fill(restoreTo);
  await page.locator('#restore-form button[type="submit"]').click();
  await dialog.waitFor();
  summary.restore_confirmation = (await dialog.textContent()).replace(/\s+/g, ' ').trim();
  await shot('confirm-restore');
  await page.locator('#confirm-yes').click();
  await ready('job');
  summary.restore_job = Number(page.url().split('#/jobs/')[1]);
  await waitStatus('succeeded');

  // A failed job's error, found through the history's filter.
  await visit('#/jobs?status=failed', 'jobs', 'jobs-failed');
  await page.getByTestId(`job-${failedJob}`).getByRole('link').click();
  await ready('job');
  summary.failed_error = await page.getByTestId('job-error').textContent();
  await axe('job-failed');
  await shot('job-failed');

  // Every other page.
  await visit('#/jobs', 'jobs', 'jobs');
  await visit('#/resources', 'resources', 'resources');
  await visit('#/resources/data', 'resource', 'resource');
  // A bucket point's keys.
  await page.locator('[data-testid^="point-"] a').first().waitFor();
  await visit('#/resources/front', 'resource', 'resource-bucket');
  await page.locator('[data-testid^="point-"] a').first().click();
  await ready('point');
  await page.getByTestId('entry-site/index.html').waitFor();
  await axe('point-bucket');
  // Into the live bucket: refused, said in the form; into a new location: restored.
  expect400 = true;
  await page.getByLabel(/^Into bucket/).fill(liveBucket);
  await page.locator('#restore-bucket-form button[type="submit"]').click();
  await dialog.waitFor();
  await page.locator('#confirm-yes').click();
  summary.bucket_refusal = (await page.locator('#restore-bucket-form .error', { hasText: 'refused' }).textContent()).trim();
  expect400 = false;
  await page.getByLabel(/^Into bucket/).fill(bucketTo);
  await shot('point-bucket');
  await page.locator('#restore-bucket-form button[type="submit"]').click();
  await dialog.waitFor();
  summary.bucket_restore_confirmation = (await dialog.textContent()).replace(/\s+/g, ' ').trim();
  await page.locator('#confirm-yes').click();
  await ready('job');
  summary.bucket_restore_job = Number(page.url().split('#/jobs/')[1]);
  await waitStatus('succeeded');
  // A database point: its databases, then a database's tables.
  await visit('#/resources/shop-db', 'resource', 'resource-database');
  await page.locator('[data-testid^="point-"] a').first().click();
  await ready('point');
  await page.getByTestId('entry-shop').getByRole('link').click();
  await ready('point');
  for (const t of ['orders', 'items']) await page.getByTestId(`entry-${t}`).waitFor();
  await axe('point-database');
  await shot('point-database');
  // Restore that database beside the live one.
  if ((await page.getByLabel('Restore as').inputValue()) !== 'shop_restored') problems.push('the database restore form is not filled');
  await page.locator('#restore-db-form button[type="submit"]').click();
  await dialog.waitFor();
  summary.db_restore_confirmation = (await dialog.textContent()).replace(/\s+/g, ' ').trim();
  await page.locator('#confirm-yes').click();
  await ready('job');
  summary.db_restore_job = Number(page.url().split('#/jobs/')[1]);
  await waitStatus('succeeded');
  // A physical database point: its mode in the list, on its page (restored
  // by a command, named there), and on the job that took it.
  await visit('#/resources/shop-files', 'resource', 'resource-physical');
  const physRow = page.locator('[data-testid^="point-"]').first();
  summary.physical_kind = (await physRow.locator('td').nth(2).textContent()).trim();
  await physRow.locator('a').first().click();
  await ready('point');
  summary.physical_mode = (await page.getByTestId('point-mode').textContent()).trim();
  summary.physical_command = (await page.getByTestId('restore-command').textContent()).trim();
  await page.getByTestId('entry-ibdata1').waitFor();
  await axe('point-physical');
  await shot('point-physical');
  // Its files: a database's directory, as the backup copied it.
  await page.getByTestId('entry-shop').getByRole('link').click();
  await ready('point');
  summary.physical_files = (await page.locator('[data-testid^="entry-"]').allTextContents()).length;
  await page.getByTestId('entry-orders.frm').waitFor();
  await visit(`#/jobs/${physicalJob}`, 'job', 'job-physical');
  summary.physical_job_mode = (await page.getByTestId('job-mode').textContent()).trim();
  await visit('#/vaults', 'vaults', 'vaults');
  await visit('#/replication', 'replication', 'replication');
  await visit('#/drills', 'drills', 'drills');
  summary.drill_steps = await page.locator('[data-testid^="report-"]', { hasText: 'Drill of shop' }).locator('.tl-row').count();
  summary.recovery_steps = await page.locator('[data-testid^="report-"]', { hasText: 'Recovery of shop' }).locator('.tl-row').count();
  // Start a drill from the page, confirm, watch it pass; its report joins the list.
  const reportsBefore = await page.locator('[data-testid^="report-"]').count();
  await page.getByRole('button', { name: 'Start drill of shop' }).click();
  await dialog.waitFor();
  summary.drill_confirmation = (await dialog.textContent()).replace(/\s+/g, ' ').trim();
  await shot('confirm-drill');
  await page.locator('#confirm-yes').click();
  await ready('job');
  summary.drill_job = Number(page.url().split('#/jobs/')[1]);
  await waitStatus('succeeded');
  summary.drill_job_steps = await page.locator('#job-report .tl-row').count();
  await axe('job-drill');
  await shot('job-drill');
  await visit('#/drills', 'drills', 'drills');
  summary.reports = await page.locator('[data-testid^="report-"]').count();
  if (summary.reports !== reportsBefore + 1) problems.push(`reports: ${reportsBefore} before the drill, ${summary.reports} after`);

  // The run's second job (the bucket) is listed on the first one's page,
  // once the run has recorded it.
  const api = (u) => page.evaluate(async ([u, t]) => (await fetch(u, { headers: { Authorization: `Bearer ${t}` } })).json(), [u, token]);
  const run = await api(`/api/v1/jobs/${summary.run_job}`);
  for (;;) {
    const jobs = await api(`/api/v1/jobs?plan=${plan}&limit=50`);
    if (jobs.some((j) => j.pid === run.pid && j.resource === 'front' && j.status !== 'running')) break;
    await page.waitForTimeout(100);
  }

  // A phone: every page again at 390 px, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, p, name] of [['#/', 'dashboard', 'dashboard'], ['#/resources', 'resources', 'resources'],
    ['#/resources/data', 'resource', 'resource'], [summary.point_hash, 'point', 'point'],
    [`#/jobs/${summary.run_job}`, 'job', 'job'], ['#/jobs', 'jobs', 'jobs'], ['#/vaults', 'vaults', 'vaults'],
    ['#/replication', 'replication', 'replication'], ['#/drills', 'drills', 'drills']]) {
    await visit(hash, p, `phone-${name}`);
    if (name === 'job') summary.siblings = (await page.locator('#job-siblings').textContent()).replace(/\s+/g, ' ').trim();
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    if (wide > 400) problems.push(`phone-${name}: the page is ${wide} px wide`);
  }
  // Keyboard: after a load, the skip link is the first stop.
  await page.reload();
  await ready('drills');
  await page.keyboard.press('Tab');
  if ((await page.evaluate(() => document.activeElement.className)) !== 'skip') problems.push('the skip link is not the first tab stop');

  // A token that stops working (rotated on the server) returns to the login form.
  expect401 = true;
  await page.evaluate(() => sessionStorage.setItem('lifeboat-token', 'f'.repeat(64)));
  await page.evaluate(() => { location.hash = '#/vaults?again'; });
  await page.locator('#login-error', { hasText: /token was refused/i }).waitFor();
  await shot('phone-login-refused');

  if (problems.length) throw new Error(problems.join('\n'));
  console.log(JSON.stringify(summary));
} catch (e) {
  if (page) await page.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(String(e.stack || e));
  if (problems.length) console.error(problems.join('\n'));
  console.error(JSON.stringify(summary));
  process.exitCode = 1;
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
