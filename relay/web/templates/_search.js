// Filters the dist table as one types and puts the first dist shown into the lines to copy; the form
// also searches on the server (?q=), so the page works without this script. The query is normalized
// as relay/search.py normalizes it.
(function () {
  var box = document.getElementById("q"), count = document.getElementById("shown");
  var rows = Array.prototype.slice.call(document.querySelectorAll("#dists tr[data-search]"));
  var names = document.querySelectorAll(".copyline .names"), none = document.getElementById("none");
  if (!box) return;
  function normalize(text) {
    text = text.trim().toLowerCase();
    var m = /^import\s+([\w.]+)/.exec(text) || /^from\s+([\w.]+)\s+import\s+(\w+)/.exec(text);
    if (m) text = m[2] ? m[1] + "." + m[2] : m[1];
    if (text.slice(-3) === ".py") text = text.slice(0, -3);
    return text.replace(/[\s._\/:\\-]+/g, ".").replace(/^\.+|\.+$/g, "");
  }
  function update() {
    var q = normalize(box.value), shown = 0, first = null;
    rows.forEach(function (row) {
      var hit = !q || row.getAttribute("data-search").indexOf(q) >= 0;
      row.hidden = !hit;
      if (hit) { shown++; if (first === null) first = row.getAttribute("data-dist"); }
    });
    if (count) count.textContent = shown;
    if (none) { none.hidden = shown > 0; none.textContent = q ? "No dist matches " + box.value.trim() + "." : "No dists."; }
    if (first !== null) names.forEach(function (span) { span.textContent = first; });
  }
  box.addEventListener("input", update);
  if (box.value) update();
})();
