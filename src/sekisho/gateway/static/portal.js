// Show-password toggle (PW-13). The page works without it.
"use strict";
document.querySelectorAll("input[data-toggle]").forEach(function (box) {
  var field = document.getElementById(box.getAttribute("data-toggle"));
  if (!field) { return; }
  box.addEventListener("change", function () {
    field.type = box.checked ? "text" : "password";
  });
});
