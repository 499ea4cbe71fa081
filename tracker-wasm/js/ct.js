/*! clicktrail loader. <script async src=".../ct.js" data-site="ID" [data-endpoint="URL"]> */
(function (w, d, n) {
  "use strict"; // as the glue was written (an ES module)
  // `cargo xtask build-tracker` puts the wasm-bindgen glue here (defining `start`
  // and `init`), and the wasm's content hash in WASM: one file, one request, and
  // the loader always fetches the module its glue was built for.
  /* GLUE */
  var WASM = "ct_wasm_bg.wasm";
  // Queue calls until the tracker runs (same stub as the optional inline snippet).
  var f = w.clicktrail = w.clicktrail || function () { (f.q = f.q || []).push(arguments); };
  if (f.l) return; // a second copy of the tag loads nothing
  f.l = 1;
  var tag = /\/ct\.js([?#]|$)/, ours = function (x) { return tag.test(x.src); },
    s = d.currentScript, a = d.scripts, i = a.length, p = w;
  while (!s && i--) if (ours(a[i])) s = a[i];
  // Do-Not-Track and Global Privacy Control: load nothing, record nothing.
  if (!s || n.doNotTrack == "1" || n.globalPrivacyControl === true) return;
  // A page in a frame of a page of this origin that has the tag (a card form, a
  // size chart, a widget) is a part of that page, not a page view of its own:
  // load nothing; `clicktrail(…)` calls made here go to that page's tracker.
  // Across origins the page around cannot be seen: it records.
  while (p !== p.parent) {
    p = p.parent;
    try {
      if (typeof p.clicktrail == "function" || [].some.call(p.document.scripts, function (x) {
        return ours(x) && x.hasAttribute("data-site") && !/^text\/plain/i.test(x.type);
      })) {
        var g = w.clicktrail = function () { try { p.clicktrail.apply(p, arguments); } catch (e) {} };
        g.l = 1;
        for (i = 0; f.q && i < f.q.length; i++) g.apply(w, f.q[i]);
        return;
      }
    } catch (e) { break; }
  }
  var src = s.src, site = s.getAttribute("data-site") || "",
    ep = s.getAttribute("data-endpoint") || new URL(src).origin;
  if (!/^[\w.-]{1,64}$/.test(site)) return console.warn("clicktrail: bad data-site");
  // The page's script errors until the tracker runs (a theme script failing while
  // the page loads), recorded once it starts; at most 10. The optional inline
  // snippet keeps them from before this script ran (in `clicktrail.e`): then
  // those are the ones, and its listeners go on keeping them until then.
  var early = f.e || [], keep = function (e) { if (early.length < 10) early.push(e); },
    on = function (add) {
      if (f.e) return;
      w[add + "EventListener"]("error", keep);
      w[add + "EventListener"]("unhandledrejection", keep);
    };
  on("add");
  // The module's bytes, compiled from a buffer: streaming compilation hands each
  // piece of the body to V8 on the page's main thread as it arrives; from a
  // buffer V8 compiles on its own threads (on the bench page, 1.1 and 1.6 ms
  // less of the main thread per load in two runs of 12 and 24 loads of each in
  // turn, 1.3 and 2.3 ms less in the task that starts it). Streaming would let V8
  // cache the compiled module, but it caches only code optimised for hot use,
  // which the tracker's never is within a page load.
  init({
    module_or_path: fetch(new URL(WASM, src).href).then(function (r) {
      if (!r.ok) throw r.status;
      return r.arrayBuffer();
    })
  }).then(function () {
    // A page the browser prerenders (speculation rules, the address bar's
    // guess) may never be shown: nothing is recorded until the visitor opens it.
    var go = function () {
      on("remove");
      start(site, ep, f.q || [], early);
      var c = w.clicktrail; // installed by start()
      if (c == f) return;
      // Never let a tracker error reach the page; late calls to the stub go through.
      var g = w.clicktrail = function (x, y, z) { try { c(x, y, z); } catch (e) {} };
      g.l = g.ready = 1; // clicktrail.ready: the tracker is recording
      f.q = { push: function (a) { w.clicktrail(a[0], a[1], a[2]); } };
    };
    if (d.prerendering) d.addEventListener("prerenderingchange", go, { once: true });
    else go();
  })["catch"](function () { on("remove"); });
})(window, document, navigator);
