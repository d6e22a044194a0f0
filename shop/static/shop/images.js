/*
 * A product picture that cannot be loaded (an imported catalogue's link gone dead) is replaced
 * by the shop's generated one, which the image names in data-fallback. A file, not an onerror
 * attribute: the Content-Security-Policy (shop/csp.py) runs no inline event handler.
 *
 * Error events do not bubble, so they are caught on their way down (capture); pictures that
 * failed before this deferred script ran are found by their state.
 */
(function () {
  "use strict";

  function fallBack(img) {
    var fallback = img.getAttribute("data-fallback");
    if (fallback && img.getAttribute("src") !== fallback) {
      img.src = fallback;
    }
  }

  document.addEventListener(
    "error",
    function (e) {
      if (e.target instanceof HTMLImageElement) {
        fallBack(e.target);
      }
    },
    true
  );
  document.querySelectorAll("img[data-fallback]").forEach(function (img) {
    if (img.complete && img.naturalWidth === 0) {
      fallBack(img);
    }
  });
})();
