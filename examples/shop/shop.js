/* clicktrail demo shop: cart in localStorage, page behaviour. Plain JS, no deps. */
(function () {
  'use strict';

  var CART_KEY = 'demo_cart';

  function ct() {
    if (typeof window.clicktrail === 'function') window.clicktrail.apply(window, arguments);
  }

  function readCart() {
    try {
      var cart = JSON.parse(localStorage.getItem(CART_KEY) || '[]');
      if (!Array.isArray(cart)) return [];
      return cart.filter(function (l) {
        return l && typeof l.sku === 'string' && typeof l.price === 'number' && l.qty > 0;
      });
    } catch (e) {
      return [];
    }
  }
  function writeCart(cart) {
    try { localStorage.setItem(CART_KEY, JSON.stringify(cart)); } catch (e) { /* storage off */ }
  }
  function clearCart() {
    try { localStorage.removeItem(CART_KEY); } catch (e) { /* storage off */ }
  }
  function cartTotal(cart) {
    var t = 0;
    cart.forEach(function (l) { t += l.price * l.qty; });
    return Math.round(t * 100) / 100;
  }
  function cartCount(cart) {
    var n = 0;
    cart.forEach(function (l) { n += l.qty; });
    return n;
  }
  function money(n) { return '\u20ac' + n.toFixed(2); }
  function $(id) { return document.getElementById(id); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text != null) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function updateBadge() {
    var badge = $('cart-count');
    if (!badge) return;
    var n = cartCount(readCart());
    badge.textContent = String(n);
    badge.hidden = n === 0;
  }

  /* Product page: add to cart. */
  function initProduct() {
    // Two deliberate flaws for the frustration and errors audits: "Size guide" looks
    // like a link but does nothing, and "Notify me" calls a stock service that is
    // not there (a JavaScript error on click).
    var notify = $('notify-me');
    if (notify) notify.addEventListener('click', function () {
      window.stockService.subscribe(document.body.getAttribute('data-page'));
    });
    var form = $('add-form');
    if (!form) return;
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var sku = form.getAttribute('data-sku');
      var name = form.getAttribute('data-name');
      var price = parseFloat(form.getAttribute('data-price'));
      var qty = parseInt($('qty').value, 10) || 1;
      var cart = readCart();
      var line = null;
      cart.forEach(function (l) { if (l.sku === sku) line = l; });
      if (line) line.qty += qty;
      else cart.push({ sku: sku, name: name, price: price, qty: qty });
      writeCart(cart);
      location.href = '/demo/cart.html';
    });
  }

  /* Cart page. */
  function renderCart() {
    var box = $('cart-lines');
    if (!box) return;
    var cart = readCart();
    box.textContent = '';
    if (cart.length === 0) {
      box.appendChild(el('p', 'Your cart is empty.', 'muted'));
    } else {
      var table = el('table', null, 'cart');
      var head = el('tr');
      ['Item', 'Price', 'Qty', 'Subtotal'].forEach(function (h, i) {
        head.appendChild(el('th', h, i > 0 ? 'num' : ''));
      });
      table.appendChild(head);
      cart.forEach(function (l) {
        var tr = el('tr');
        tr.appendChild(el('td', l.name));
        tr.appendChild(el('td', money(l.price), 'num'));
        tr.appendChild(el('td', String(l.qty), 'num'));
        tr.appendChild(el('td', money(l.price * l.qty), 'num'));
        table.appendChild(tr);
      });
      box.appendChild(table);
    }
    $('cart-total').textContent = money(cartTotal(cart));
    updateBadge();
  }
  function initCart() {
    if (!$('cart-lines')) return;
    renderCart();
    $('clear-cart').addEventListener('click', function () {
      clearCart();
      renderCart();
    });
  }

  /* Checkout: two screens on one URL. */
  function renderSummary() {
    var list = $('summary-lines');
    if (!list) return;
    var cart = readCart();
    list.textContent = '';
    if (cart.length === 0) list.appendChild(el('li', 'Your cart is empty', 'muted'));
    cart.forEach(function (l) {
      var li = el('li');
      li.appendChild(el('span', l.qty + ' \u00d7 ' + l.name));
      li.appendChild(el('span', money(l.price * l.qty)));
      list.appendChild(li);
    });
    $('summary-total').textContent = money(cartTotal(cart));
  }
  function checkRequired(form, fields, errorBox) {
    var missing = [];
    fields.forEach(function (f) {
      var input = form.elements[f.name];
      var empty = !input.value.trim();
      input.setAttribute('aria-invalid', empty ? 'true' : 'false');
      if (empty) missing.push(f.label);
    });
    if (missing.length) {
      errorBox.textContent = 'Please fill in: ' + missing.join(', ') + '.';
      errorBox.hidden = false;
      return false;
    }
    errorBox.hidden = true;
    errorBox.textContent = '';
    return true;
  }
  function showScreen(name) {
    $('screen-shipping').hidden = name !== 'shipping';
    $('screen-payment').hidden = name !== 'payment';
    $('step-shipping').className = name === 'shipping' ? 'current' : '';
    $('step-payment').className = name === 'payment' ? 'current' : '';
    window.scrollTo(0, 0);
  }
  function initCheckout() {
    var shipping = $('shipping-form');
    if (!shipping) return;
    var payment = $('payment-form');
    renderSummary();

    shipping.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var ok = checkRequired(shipping, [
        { name: 'full-name', label: 'Full name' },
        { name: 'email', label: 'Email' },
        { name: 'address', label: 'Address' }
      ], $('shipping-error'));
      if (!ok) {
        ct('event', 'invalid', { form: 'shipping' });
        return;
      }
      showScreen('payment');
    });

    payment.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var ok = checkRequired(payment, [{ name: 'card-number', label: 'Card number' }], $('payment-error'));
      if (!ok) {
        ct('event', 'invalid', { form: 'payment' });
        return;
      }
      location.href = '/demo/confirmation.html';
    });

    $('back-to-shipping').addEventListener('click', function () {
      showScreen('shipping');
    });

    $('apply-promo').addEventListener('click', function () {
      var msg = $('promo-message');
      msg.textContent = $('promo').value.trim()
        ? 'Sorry, that code is not valid.'
        : 'Enter a code first.';
      msg.hidden = false;
    });
  }

  /* Confirmation: report the purchase, then empty the cart. */
  function initConfirmation() {
    if (document.body.getAttribute('data-page') !== 'confirmation') return;
    var cart = readCart();
    var total = cartTotal(cart);
    var items = cartCount(cart);
    ct('event', 'purchase', { total: total, items: items });
    var t = $('order-total');
    if (t) t.textContent = money(total);
    var n = $('order-items');
    if (n) n.textContent = items === 1 ? '1 item' : items + ' items';
    clearCart();
    updateBadge();
  }

  updateBadge();
  initProduct();
  initCart();
  initCheckout();
  initConfirmation();
})();
