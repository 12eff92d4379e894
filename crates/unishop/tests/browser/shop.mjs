// Buys something in Unishop with Debian's Chromium, headless, the way a
// customer would: open the shop, add a product to the cart, open the cart,
// check out, see the confirmation and the order in "Your orders".
//
//   node shop.mjs SHOP_URL SCREENSHOT.png [PRODUCT_ID]
//
// Prints {"order_id": N, "product_id": P, "product_name": "..."} on success.
// Never downloads a browser: CHROMIUM (default /usr/bin/chromium) is used.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [url, screenshot, productArg] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error('usage: node shop.mjs SHOP_URL SCREENSHOT.png [PRODUCT_ID]');
  process.exit(2);
}
const productId = productArg || '2';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'unishop-chromium-'));
fs.mkdirSync(path.dirname(screenshot), { recursive: true });

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1280, height: 900 },
  timeout: 60_000,
});
const problems = [];
let page;
try {
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`); });

  await page.goto(url);
  const card = page.getByTestId(`product-${productId}`);
  await card.waitFor();
  const productName = (await card.locator('.card-title').textContent()).trim();
  // Bootstrap's CSS really is applied (from the bucket): buttons get its padding and border radius.
  const radius = await card.getByRole('button', { name: 'Add to cart' })
    .evaluate((b) => getComputedStyle(b).borderTopLeftRadius);
  if (radius === '0px') throw new Error('Bootstrap CSS is not applied');

  await page.getByTestId(`add-${productId}`).click();
  await page.getByTestId('cart-count').filter({ hasText: '1' }).waitFor();
  await page.getByTestId('open-cart').click();
  await page.getByTestId(`cart-line-${productId}`).waitFor();
  await page.getByTestId('checkout').click();

  const confirmation = page.getByTestId('order-confirmation');
  await confirmation.waitFor();
  const orderId = Number(await confirmation.getAttribute('data-order-id'));
  if (!Number.isInteger(orderId) || orderId <= 0) throw new Error(`no order id in the confirmation`);
  await page.getByTestId(`order-${orderId}`).waitFor();
  await page.getByTestId('cart-count').filter({ hasText: '0' }).waitFor();
  await page.locator('#cart').waitFor({ state: 'hidden' });
  await page.locator('.offcanvas-backdrop').waitFor({ state: 'detached' });
  await page.screenshot({ path: screenshot, fullPage: true });
  if (problems.length) throw new Error(problems.join('\n'));
  console.log(JSON.stringify({ order_id: orderId, product_id: Number(productId), product_name: productName }));
} catch (e) {
  if (page) await page.screenshot({ path: screenshot.replace(/\.png$/, '-failure.png'), fullPage: true }).catch(() => {});
  console.error(String(e.stack || e));
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
