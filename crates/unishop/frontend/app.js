// Unishop's frontend: catalogue, cart (kept in localStorage), checkout and
// the orders placed from this browser — all through the shop's JSON API.

const CART_KEY = 'unishop.cart';
const ORDERS_KEY = 'unishop.orders';

const products = new Map(); // id → product
const cart = new Map(JSON.parse(localStorage.getItem(CART_KEY) || '[]')); // id → quantity

const $ = (sel) => document.querySelector(sel);
const money = (cents) => `€${(cents / 100).toFixed(2)}`;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function alertBox(where, kind, text, attrs = {}) {
  const box = el('div', { class: `alert alert-${kind} alert-dismissible fade show`, role: 'alert', ...attrs },
    text, el('button', { type: 'button', class: 'btn-close', 'data-bs-dismiss': 'alert', 'aria-label': 'Close' }));
  where.replaceChildren(box);
}

async function api(path, options = {}) {
  let res;
  try {
    res = await fetch(path, { headers: { 'content-type': 'application/json' }, ...options });
  } catch (e) {
    throw new Error(`the shop does not answer (${e.message})`);
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function saveCart() {
  localStorage.setItem(CART_KEY, JSON.stringify([...cart]));
  renderCart();
}

function addToCart(id) {
  const p = products.get(id);
  const q = (cart.get(id) || 0) + 1;
  if (p && q > p.stock) {
    alertBox($('#messages'), 'warning', `Only ${p.stock} × ${p.name} in stock.`);
    return;
  }
  cart.set(id, q);
  saveCart();
}

function setQuantity(id, q) {
  if (q <= 0) cart.delete(id); else cart.set(id, q);
  saveCart();
}

function renderProducts() {
  const grid = $('#products');
  grid.replaceChildren(...[...products.values()].map((p) => el('div', { class: 'col' },
    el('div', { class: 'card h-100 product-card', 'data-testid': `product-${p.id}` },
      el('img', { class: 'card-img-top', src: p.image_url, alt: p.name, loading: 'lazy' }),
      el('div', { class: 'card-body d-flex flex-column' },
        el('h3', { class: 'card-title h6' }, p.name),
        el('p', { class: 'card-text small text-secondary flex-grow-1' }, p.description),
        el('div', { class: 'd-flex justify-content-between align-items-center' },
          el('span', { class: 'price fw-semibold' }, money(p.price_cents)),
          el('span', { class: `badge ${p.stock > 0 ? 'text-bg-light' : 'text-bg-danger'}` },
            p.stock > 0 ? `${p.stock} in stock` : 'sold out')),
        el('button', {
          class: 'btn btn-sm btn-outline-primary mt-2', type: 'button', 'data-testid': `add-${p.id}`,
          ...(p.stock > 0 ? {} : { disabled: '' }),
          onclick: () => addToCart(p.id),
        }, 'Add to cart'))))));
}

function renderCart() {
  const lines = $('#cart-lines');
  let total = 0;
  let count = 0;
  const items = [];
  for (const [id, q] of cart) {
    const p = products.get(id);
    if (!p) continue;
    total += p.price_cents * q;
    count += q;
    items.push(el('li', { class: 'list-group-item d-flex align-items-center gap-2', 'data-testid': `cart-line-${id}` },
      el('span', { class: 'flex-grow-1' }, p.name),
      el('button', { class: 'btn btn-sm btn-outline-secondary', type: 'button', 'aria-label': 'one less', onclick: () => setQuantity(id, q - 1) }, '−'),
      el('span', { class: 'qty' }, String(q)),
      el('button', { class: 'btn btn-sm btn-outline-secondary', type: 'button', 'aria-label': 'one more', onclick: () => setQuantity(id, q + 1) }, '+'),
      el('span', { class: 'text-end', style: 'min-width:5rem' }, money(p.price_cents * q))));
  }
  lines.replaceChildren(...(items.length ? items : [el('li', { class: 'list-group-item text-secondary' }, 'The cart is empty.')]));
  $('#cart-total').textContent = money(total);
  $('#cart-count').textContent = String(count);
  $('#checkout').disabled = count === 0;
}

async function checkout() {
  const button = $('#checkout');
  button.disabled = true;
  const items = [...cart].filter(([id]) => products.has(id)).map(([product_id, quantity]) => ({ product_id, quantity }));
  try {
    const order = await api('/api/orders', { method: 'POST', body: JSON.stringify({ items }) });
    cart.clear();
    saveCart();
    const ids = JSON.parse(localStorage.getItem(ORDERS_KEY) || '[]');
    ids.unshift(order.order_id);
    localStorage.setItem(ORDERS_KEY, JSON.stringify(ids.slice(0, 20)));
    bootstrap.Offcanvas.getOrCreateInstance('#cart').hide();
    alertBox($('#messages'), 'success', `Thank you! Order #${order.order_id} is placed (${money(order.total_cents)}).`,
      { 'data-testid': 'order-confirmation', 'data-order-id': String(order.order_id) });
    await Promise.all([loadProducts(), renderOrders()]);
  } catch (e) {
    alertBox($('#cart-messages'), 'danger', `The order was not placed: ${e.message}`, { 'data-testid': 'order-error' });
    button.disabled = false;
  }
}

async function renderOrders() {
  const ids = JSON.parse(localStorage.getItem(ORDERS_KEY) || '[]');
  if (!ids.length) return;
  const orders = await Promise.all(ids.slice(0, 10).map((id) => api(`/api/orders/${id}`).catch(() => null)));
  const rows = orders.filter(Boolean).map((o) => el('tr', { 'data-testid': `order-${o.id}` },
    el('td', {}, `#${o.id}`),
    el('td', {}, new Date(o.created_at).toLocaleString()),
    el('td', {}, o.lines.map((l) => `${l.quantity} × ${l.name}`).join(', ')),
    el('td', { class: 'text-end' }, money(o.total_cents))));
  if (rows.length) $('#orders').replaceChildren(...rows);
}

async function loadProducts() {
  const list = await api('/api/products');
  products.clear();
  for (const p of list) products.set(p.id, p);
  renderProducts();
  renderCart();
}

$('#checkout').addEventListener('click', checkout);
loadProducts().catch((e) => {
  $('#products').replaceChildren();
  alertBox($('#messages'), 'danger', `The catalogue cannot be loaded: ${e.message}`, { 'data-testid': 'load-error' });
});
renderOrders().catch(() => {});
