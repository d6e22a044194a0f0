/*
 * Recommendations beacon: sends product views, clicks and impressions to POST /api/events/.
 * No dependencies; about 6 KB without comments and whitespace.
 *
 * Include it once per page, after the elements it watches (or with `defer`):
 *
 *   {% load static %}
 *   <script src="{% static 'recommendations/beacon.js' %}" data-csrf-token="{{ csrf_token }}" defer></script>
 *
 * Mark elements with data attributes:
 *
 *   <body data-rec-view="product" data-product-id="{{ product.pk }}">      a product view on load
 *   <body data-rec-view="store" data-store-id="{{ store.pk }}">            a store view on load
 *     (on <body> or any other element: the first one with data-rec-view counts; with
 *     data-rec-id="{{ request.GET.rec }}" when a recommendation's link opened the page, the
 *     view is credited to that list, as its click is)
 *   <section data-rec-impression data-rec-id="{{ recommendation_id }}">   an impression when half visible
 *     <a href="..." data-product-id="{{ p.pk }}">...</a>                   a click on a recommended product
 *       (but on a <summary> inside it, such as a "Why?" that opens the reason)
 *     <a href="..." data-store-id="{{ s.pk }}">...</a>                     a click on a recommended store
 *   (optional: data-rec-kind="similar" on the section, data-rec-position="3" on a product or store)
 *   </section>
 *
 * Optional attributes of the script tag: data-endpoint (default "/api/events/").
 * From other scripts: window.recommendationsBeacon.track({event_type: "favourite", product_id: "12"}).
 *
 * CSRF: navigator.sendBeacon cannot set headers, so the token travels in the body as
 * `csrf_token` (the endpoint accepts it there). When sendBeacon is missing or refuses the
 * payload, fetch with keepalive sends the token as the X-CSRFToken header instead. The token
 * comes from data-csrf-token or else the csrftoken cookie; using {{ csrf_token }} in the
 * template makes Django set that cookie. Events carry random event ids, so a batch sent twice
 * is stored once.
 *
 * Each batch carries `sent_at`, the browser's clock when it was sent: the server moves the
 * events' timestamps by how far that clock is off its own. Batches stay under MAX_BYTES (both
 * sendBeacon and keepalive fetch refuse bodies over 64 KB); failures are silent.
 *
 * A click sends the queue as soon as its handlers have run (the page is about to change),
 * except a click that submits a form: then the queue waits for the page to hide, by when the
 * form's response has come. A new visitor has no session cookie until a response sets one,
 * and their first form may be what starts their session (an add-to-cart button on a
 * recommended card): a batch sent beside it would carry no cookie either and start a second
 * session on the server, so that the first impressions and clicks fell outside the visitor's
 * session and experiment variant, and the browser kept whichever session cookie came last
 * (the cart's session, or the events'). Sent after the response, the batch carries the cookie
 * the form's response set. This is fixed here rather than by merging sessions on the server:
 * once two exist, which cookie the browser kept (and so where the cart is) depends on the order
 * the responses came in; and a session started by the first page itself would cost a session
 * row for every page a crawler fetches.
 *
 * For the same reason the beacon's own batches go one at a time until one has had its response:
 * on a new visitor's first page, the impressions sent after 2 seconds and a click a moment later
 * would each reach the server without a cookie and start a session of their own (the click in
 * one without its list, so uncredited). The session cookie is HttpOnly, so the beacon cannot see
 * whether there is one: each page sends its first batch by fetch and holds later batches until
 * the response, which set the cookie if there was none, has come back; then it sends as usual.
 * When the page hides there is no time to wait, and everything held goes at once.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var endpoint = (script && script.getAttribute("data-endpoint")) || "/api/events/";
  var MAX_BATCH = 50;
  // Bytes per request: keepalive requests share a 64 KB budget while in flight, so two fit.
  var MAX_BYTES = 30000;
  var FLUSH_DELAY_MS = 2000;
  var queue = [];
  var timer = null;
  // Whether a response from the endpoint has come back to this page: it set the session cookie
  // if the visitor had none (an HttpOnly cookie, which the beacon cannot read). Until then one
  // batch at a time is sent (see the top of the file): `inFlight` while it is on its way,
  // `held` when a flush was asked for meanwhile.
  var sessionKnown = false;
  var inFlight = false;
  var held = false;
  var seen = typeof WeakSet === "function" ? new WeakSet() : null;

  function cookie(name) {
    var parts = ("; " + document.cookie).split("; " + name + "=");
    return parts.length > 1 ? decodeURIComponent(parts.pop().split(";")[0]) : "";
  }

  function csrfToken() {
    return (script && script.getAttribute("data-csrf-token")) || cookie("csrftoken");
  }

  function newId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function byteLength(text) {
    // Without TextEncoder: at most 3 bytes per UTF-16 unit.
    return window.TextEncoder ? new TextEncoder().encode(text).length : text.length * 3;
  }

  function post(body, token, keepalive) {
    return window.fetch(endpoint, {
      method: "POST",
      keepalive: keepalive,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": token },
      body: body
    });
  }

  // Resolves with the response. keepalive survives leaving the page but refuses big bodies (or
  // too many at once): then a plain request, which is sent while the page stays open.
  function fetchBatch(events, token) {
    var body = JSON.stringify({ sent_at: new Date().toISOString(), events: events });
    return post(body, token, true).catch(function () {
      return post(body, token, false);
    });
  }

  function send(events) {
    var token = csrfToken();
    var sent = false;
    if (navigator.sendBeacon) {
      var body = JSON.stringify({ csrf_token: token, sent_at: new Date().toISOString(), events: events });
      // text/plain is a "simple" content type: no preflight, and the server reads JSON anyway.
      try {
        sent = navigator.sendBeacon(endpoint, new Blob([body], { type: "text/plain;charset=UTF-8" }));
      } catch (e) {
        sent = false;
      }
    }
    if (!sent && window.fetch) {
      fetchBatch(events, token).catch(function () {});
    }
  }

  // A batch of the page sent before any response: by fetch, whose response (and so the cookie
  // it may set) this waits for before the batches held meanwhile go. A failure releases them
  // too, the next one going alone again.
  function sendFirst(events) {
    inFlight = true;
    fetchBatch(events, csrfToken())
      .then(
        function (response) {
          sessionKnown = response.ok;
        },
        function () {}
      )
      .then(function () {
        inFlight = false;
        if (held) {
          held = false;
          flush();
        }
      });
  }

  // Takes from the queue a batch of at most MAX_BATCH events and (but for a single bigger
  // event) MAX_BYTES.
  function nextBatch() {
    var batch = [];
    var bytes = 0;
    while (queue.length) {
      var size = byteLength(JSON.stringify(queue[0])) + 1;
      if (batch.length && (batch.length >= MAX_BATCH || bytes + size > MAX_BYTES)) {
        break;
      }
      batch.push(queue.shift());
      bytes += size;
    }
    return batch;
  }

  // Sends the queue; `urgent` when the page is hiding, which leaves no time to wait for a
  // response: everything goes at once.
  function flush(urgent) {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (!urgent && inFlight) {
      held = queue.length > 0;
      return;
    }
    if (!urgent && !sessionKnown && window.fetch && queue.length) {
      sendFirst(nextBatch());
      held = queue.length > 0;
      return;
    }
    while (queue.length) {
      send(nextBatch());
    }
  }

  function track(event, immediately) {
    event.event_id = event.event_id || newId();
    event.timestamp = event.timestamp || new Date().toISOString();
    // Page and referrer cut to 500 characters, as the server's own page context: a browser's
    // context must stay under the server's cap (MAX_BROWSER_CONTEXT_BYTES, 4 KB).
    var context = { page: location.pathname.slice(0, 500) };
    if (document.referrer) {
      context.referrer = document.referrer.slice(0, 500);
    }
    for (var key in event.context || {}) {
      context[key] = event.context[key];
    }
    event.context = context;
    queue.push(event);
    if (queue.length >= MAX_BATCH) {
      flush();
    } else if (immediately) {
      // Once the click's default action has begun: a form it submits cancels this (onSubmit).
      flushIn(0);
    } else if (!timer) {
      flushIn(FLUSH_DELAY_MS);
    }
  }

  function flushIn(delay) {
    clearTimeout(timer);
    timer = setTimeout(flush, delay);
  }

  // A form is being submitted: the queue waits for the page to hide (see the top of the file).
  // If the form does not leave the page, the next event's timer or leaving the page sends it.
  function onSubmit(e) {
    if (!e.defaultPrevented) {
      clearTimeout(timer);
      timer = null;
      held = false;
    }
  }

  // Optional extras a template may put on the elements: the kind of block and the position.
  function extras(container, target) {
    var context = {};
    var kind = container.getAttribute("data-rec-kind");
    var position = target ? target.getAttribute("data-rec-position") : null;
    if (kind) {
      context.kind = kind;
    }
    if (position !== null && position !== "") {
      context.position = Number(position);
    }
    return context;
  }

  // The values of `attribute` on the block's elements: the products (or stores) it shows.
  function shownIds(container, attribute) {
    var ids = [];
    var nodes = container.querySelectorAll("[" + attribute + "]");
    for (var i = 0; i < nodes.length; i++) {
      ids.push(nodes[i].getAttribute(attribute));
    }
    return ids;
  }

  function impression(container) {
    if (seen) {
      if (seen.has(container)) {
        return;
      }
      seen.add(container);
    }
    var event = {
      event_type: "impression",
      recommendation_id: container.getAttribute("data-rec-id") || "",
      context: extras(container, null)
    };
    var products = shownIds(container, "data-product-id");
    var stores = shownIds(container, "data-store-id");
    if (products.length) {
      event.products = products;
    }
    if (stores.length) {
      event.stores = stores;
    }
    if (products.length || stores.length) {
      track(event);
    }
  }

  function watchImpressions() {
    var containers = document.querySelectorAll("[data-rec-impression]");
    if (!("IntersectionObserver" in window)) {
      for (var i = 0; i < containers.length; i++) {
        impression(containers[i]);
      }
      return;
    }
    // Seen: half of the block is on screen, or half a screen of it when the block is taller
    // than that (a listing of 24 cards never shows half of itself at once, least on a phone).
    // The callback runs at each twentieth of the block crossed, up to blocks of ten screens.
    var steps = [];
    for (var step = 0; step <= 20; step++) {
      steps.push(step / 20);
    }
    var observer = new IntersectionObserver(
      function (entries) {
        entries.forEach(function (entry) {
          var screen = entry.rootBounds ? entry.rootBounds.height : window.innerHeight;
          var needed = Math.min(entry.boundingClientRect.height, screen) / 2;
          if (entry.isIntersecting && entry.intersectionRect.height >= needed) {
            impression(entry.target);
            observer.unobserve(entry.target);
          }
        });
      },
      { threshold: steps }
    );
    for (var j = 0; j < containers.length; j++) {
      observer.observe(containers[j]);
    }
  }

  function onClick(e) {
    // Opening a disclosure inside a card (a "Why?" <summary>) is not a click on the recommendation.
    if (e.target && e.target.closest && e.target.closest("summary")) {
      return;
    }
    var target = e.target && e.target.closest ? e.target.closest("[data-product-id], [data-store-id]") : null;
    var container = target ? target.closest("[data-rec-impression]") : null;
    if (!container) {
      return;
    }
    var event = {
      event_type: "click",
      recommendation_id: container.getAttribute("data-rec-id") || "",
      context: extras(container, target)
    };
    if (target.hasAttribute("data-product-id")) {
      event.product_id = target.getAttribute("data-product-id");
    } else {
      event.store_id = target.getAttribute("data-store-id");
    }
    // The page is about to change: send now, not on a timer (unless the click submits a form).
    track(event, true);
  }

  // The page's view, credited to the list whose link opened the page (the element's
  // data-rec-id; the server keeps it only if this visitor was shown that list).
  function pageView() {
    var element = document.querySelector("[data-rec-view]");
    var kind = element && element.getAttribute("data-rec-view");
    var event = null;
    if (kind === "product" && element.getAttribute("data-product-id")) {
      event = { event_type: "view", product_id: element.getAttribute("data-product-id") };
    } else if (kind === "store" && element.getAttribute("data-store-id")) {
      event = { event_type: "store_view", store_id: element.getAttribute("data-store-id") };
    }
    if (event) {
      event.recommendation_id = element.getAttribute("data-rec-id") || "";
      track(event);
    }
  }

  function start() {
    pageView();
    watchImpressions();
    document.addEventListener("click", onClick, true);
    document.addEventListener("submit", onSubmit);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") {
        flush(true);
      }
    });
    window.addEventListener("pagehide", function () {
      flush(true);
    });
  }

  window.recommendationsBeacon = { track: track, flush: flush };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
