// Copy buttons: shown only with a script; the line itself stays selectable with one click without one.
(function () {
  function copied(button, text) {
    button.textContent = text;
    setTimeout(function () { button.textContent = "Copy"; }, 1500);
  }
  document.querySelectorAll("button.copy-button").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var line = document.getElementById(button.getAttribute("data-copy"));
      var text = line.textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { copied(button, "Copied"); },
                                                 function () { copied(button, "Select and copy"); });
        return;
      }
      // Plain http on a LAN host has no clipboard API: select the line and copy the selection.
      var range = document.createRange();
      range.selectNodeContents(line);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      copied(button, ok ? "Copied" : "Press Ctrl+C");
    });
  });
})();
