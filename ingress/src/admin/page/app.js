// The admin page's one script (served from /admin/app.js, so the CSP can forbid inline
// scripts): a button with data-copy-target="<id>" copies that input's value.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy-target]");
  if (!button) return;
  var input = document.getElementById(button.getAttribute("data-copy-target"));
  if (!input) return;
  var done = function () {
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = "Copy"; }, 2000);
  };
  var fallback = function () {
    input.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* selected: copy by hand */ }
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(input.value).then(done, fallback);
  } else {
    fallback();
  }
});
