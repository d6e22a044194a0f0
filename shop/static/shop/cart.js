/*
 * Adding to the cart without leaving the page: the add forms (marked data-cart-add) are sent
 * by fetch, and the cart badge and a status line show the answer.
 *
 * Why: reloading the page after each "+" ranked a "Recommended" listing anew (every position
 * moved), and recorded the search or the product view again. Without JavaScript the form posts
 * as before and the server redirects back (a listing to the same page of its kept order, a
 * search without recording it again: shop.views). An answer that is not the server's JSON (an
 * expired CSRF token, a product gone) falls back to posting the form the ordinary way.
 *
 * The listener is on window, so it runs after the beacon's (on document): the beacon sees a
 * form being sent and holds its events until the form's response has come, which may be what
 * gives a new visitor their session cookie (see beacon.js); then they are sent.
 *
 * Adds go one after another, each once the one before has its answer: a new visitor's first add
 * starts their session, and two sent before that answer came would each start one; the browser
 * keeps one cookie, and the other add's cart (and its events) would be lost.
 */
(function () {
  "use strict";

  if (!window.fetch || !window.FormData) {
    return;
  }

  function show(message, isError) {
    var status = document.getElementById("cart-status");
    if (!status) {
      return;
    }
    status.textContent = message;
    status.classList.toggle("error", isError);
    clearTimeout(show.timer);
    show.timer = setTimeout(function () {
      status.textContent = "";
    }, 6000);
  }

  function showCount(count) {
    var badge = document.querySelector("[data-testid=cart-count]");
    if (badge) {
      badge.textContent = String(count);
      badge.closest("a").setAttribute("aria-label", "Cart, " + count + " item" + (count === 1 ? "" : "s"));
    }
  }

  var queue = Promise.resolve(); // the adds still to be answered, in the order they were made

  window.addEventListener("submit", function (e) {
    var form = e.target;
    if (e.defaultPrevented || !form.matches || !form.matches("form[data-cart-add]")) {
      return;
    }
    e.preventDefault();
    var button = form.querySelector("[type=submit]");
    // A second click while this one is on its way adds nothing. Marked, not `disabled`: a
    // disabled button loses the keyboard focus, and the next Tab would start at the top.
    if (button.getAttribute("aria-disabled") === "true") {
      return;
    }
    button.setAttribute("aria-disabled", "true");
    var body = new FormData(form);
    queue = queue.then(function () {
      return fetch(form.action, {
        method: "POST",
        body: body,
        headers: { Accept: "application/json" },
        credentials: "same-origin"
      })
        .then(function (response) {
          return response.json().then(function (answer) {
            showCount(answer.count);
            show(answer.message, !response.ok);
          });
        })
        .catch(function () {
          form.submit();
          // The page is leaving by that post: the adds waiting behind it must not go beside it
          // (a new visitor's two requests would each start a session), so the queue stops here.
          return new Promise(function () {});
        })
        .then(function () {
          button.removeAttribute("aria-disabled");
          if (window.recommendationsBeacon) {
            window.recommendationsBeacon.flush();
          }
        });
    });
  });
})();
