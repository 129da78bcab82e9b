// mail: plain script, no build step (see the issue-23 contract).
// Keyboard shortcuts of the mail pages (j/k o Enter r a f c e # / ? Esc),
// the list's selection, and rows that open on a click anywhere in them.
// No inline handlers: the page CSP is script-src 'self'.
(function () {
  "use strict";

  function mailRoot() { return document.querySelector(".mail[data-account]"); }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("#message-list tr[data-uid]")); }
  function selected() { return document.querySelector("#message-list tr.selected"); }

  var selectedUid = null;     // kept across htmx swaps (a flagged row, a refreshed list)

  function select(row) {
    var old = selected();
    if (old) old.classList.remove("selected");
    if (!row) { selectedUid = null; return; }
    selectedUid = row.dataset.uid;
    row.classList.add("selected");
    row.scrollIntoView({ block: "nearest" });
    var link = row.querySelector("td.subject a");
    if (link) link.focus({ preventScroll: true });
  }

  function move(step) {
    var all = rows();
    if (!all.length) return;
    var at = all.indexOf(selected());
    var next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    select(all[next]);
  }

  function go(url) { if (url) window.location.assign(url); }

  // On the list: the selected row's message; on the reading pane: this message.
  function compose(kind) {
    var root = mailRoot();
    if (!root) return;
    if (kind === "compose") return go(root.dataset.compose);
    if (root.dataset.reply) {      // the reading pane knows its message's URLs
      return go(kind === "reply" ? root.dataset.reply : kind === "all" ? root.dataset.replyAll : root.dataset.forward);
    }
    var row = selected();
    if (!row) return;
    var folder = new URLSearchParams(row.dataset.url.split("?")[1] || "").get("folder") || "INBOX";
    var base = root.dataset.compose + "?";
    var q = kind === "forward" ? "forward=" : "reply=";
    go(base + q + encodeURIComponent(row.dataset.uid) + "&folder=" + encodeURIComponent(folder) +
       (kind === "all" ? "&reply_all=1" : ""));
  }

  function act(what) {
    var pane = document.getElementById("message-actions");
    if (pane) {        // the reading pane: its own form
      var button = pane.querySelector('button[value="' + what + '"]');
      if (button) button.click();
      return;
    }
    var row = selected(), form = document.getElementById("key-action");
    if (!row || !form) return;
    var after = row.nextElementSibling || row.previousElementSibling;
    form.elements.uid.value = row.dataset.uid;
    form.elements["do"].value = what;
    // In place: the row goes and the selection moves on once the server has done it;
    // if it refused, the plain form is sent so that its answer (why) is shown.
    fetch(form.getAttribute("action"), { method: "POST", body: new FormData(form), credentials: "same-origin",
                                         headers: { "HX-Request": "true" } })
      .then(function (response) {
        if (!response.ok) { form.submit(); return; }
        row.remove();
        if (after && after.dataset && after.dataset.uid) select(after);
      })
      .catch(function () { form.submit(); });
  }

  function help(show) {
    var box = document.getElementById("shortcut-help");
    if (box) box.hidden = show === undefined ? !box.hidden : !show;
  }

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape") { help(false); if (typing(event.target)) event.target.blur(); return; }
    if (typing(event.target) || !mailRoot()) return;
    var handled = true;
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "o": case "Enter":
        if (selected()) go(selected().dataset.url); else handled = false;
        break;
      case "r": compose("reply"); break;
      case "a": compose("all"); break;
      case "f": compose("forward"); break;
      case "c": compose("compose"); break;
      case "e": act("archive"); break;
      case "#": act("trash"); break;
      case "/":
        var box = document.getElementById("search-subject");
        if (box) box.focus(); else go(mailRoot().dataset.back);
        break;
      case "?": help(); break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  document.addEventListener("htmx:afterSettle", function () {
    if (selectedUid === null || selected()) return;
    var row = document.getElementById("msg-" + selectedUid);
    if (row) row.classList.add("selected");
  });

  // A click anywhere in a row (not on its star) opens the message.
  document.addEventListener("click", function (event) {
    var box = document.getElementById("shortcut-help");
    if (box && !box.hidden && event.target === box) { help(false); return; }
    var row = event.target.closest && event.target.closest("#message-list tr[data-uid]");
    if (!row || event.target.closest("a, button, form, input")) return;
    go(row.dataset.url);
  });
})();
