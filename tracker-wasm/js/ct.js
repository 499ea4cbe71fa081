/*! clicktrail loader. <script async src=".../ct.js" data-site="ID" [data-endpoint="URL"]> */
(function (w, d, n) {
  // Queue calls until the tracker runs (same stub as the optional inline snippet).
  var f = w.clicktrail = w.clicktrail || function () { (f.q = f.q || []).push(arguments); };
  if (f.l) return; // a second copy of the tag loads nothing
  f.l = 1;
  var s = d.currentScript, a = d.scripts, i = a.length;
  while (!s && i--) if (/\/ct\.js([?#]|$)/.test(a[i].src)) s = a[i];
  // Do-Not-Track and Global Privacy Control: load nothing, record nothing.
  if (!s || n.doNotTrack == "1" || n.globalPrivacyControl === true) return;
  var src = s.src, base = new URL(".", src).href, site = s.getAttribute("data-site") || "",
    ep = s.getAttribute("data-endpoint") || new URL(src).origin;
  if (!/^[\w.-]{1,64}$/.test(site)) return console.warn("clicktrail: bad data-site");
  // The module is fetched beside its glue, not after it: one round trip fewer
  // before recording starts. (A failed fetch is handled where it is awaited.)
  var wasm = fetch(base + "ct_wasm_bg.wasm");
  wasm["catch"](function () {});
  import(base + "ct_wasm.js").then(function (m) {
    return m.default({ module_or_path: wasm }).then(function () {
      m.start(site, ep, f.q || []);
      var c = w.clicktrail; // installed by start()
      if (c == f) return;
      // Never let a tracker error reach the page; late calls to the stub go through.
      var g = w.clicktrail = function (x, y, z) { try { c(x, y, z); } catch (e) {} };
      g.l = g.ready = 1; // clicktrail.ready: the tracker is recording
      f.q = { push: function (a) { w.clicktrail(a[0], a[1], a[2]); } };
    });
  })["catch"](function () {});
})(window, document, navigator);
