// Copy buttons: shown only with a script; without one, a click on a line selects it whole.
(function () {
  function copied(button, text) {
    button.textContent = text;
    setTimeout(function () { button.textContent = "Copy"; }, 1500);
  }
  function copyBySelection(button, line) {
    // Plain http on a LAN host has no clipboard API: select the line and copy the selection.
    var range = document.createRange();
    range.selectNodeContents(line);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    copied(button, ok ? "Copied" : "Press Ctrl+C");
  }
  document.querySelectorAll("button.copy-button").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var line = document.getElementById(button.getAttribute("data-copy"));
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(line.textContent).then(
          function () { copied(button, "Copied"); },
          function () { copyBySelection(button, line); });
      } else {
        copyBySelection(button, line);
      }
    });
  });
})();
