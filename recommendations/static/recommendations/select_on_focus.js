/*
 * A field marked data-select-on-focus selects its whole text when focused, ready to copy (the
 * admin's new API key). A file, not an onfocus attribute: a Content-Security-Policy without
 * 'unsafe-inline' runs no inline event handler.
 */
document.addEventListener("focusin", function (e) {
  if (e.target.matches && e.target.matches("[data-select-on-focus]")) {
    e.target.select();
  }
});
