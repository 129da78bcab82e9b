// compose: plain script, no build step (see the issue-23 contract).
// Drafts are saved as the user types: 2 s after the last change the form is
// posted to its data-draft-url; the server stores it in the Drafts folder and
// answers with the new draft's UID, which the form keeps (the next save
// replaces that draft, sending removes it). One save at a time; a change made
// during a save is saved after it.
(function () {
  "use strict";
  var DELAY = 2000;

  function setup(form) {
    var url = form.getAttribute("data-draft-url");
    var maxAttach = parseInt(form.getAttribute("data-max-attachments") || "0", 10);
    var status = form.querySelector(".draft-status");
    var files = form.querySelector("input[type=file][name=attachments]");
    var attachError = form.querySelector(".attach-error");
    var timer = null, saving = null, dirty = false, sending = false;

    function say(text) { if (status) status.textContent = text; }

    function keptSize() {
      var total = 0;
      form.querySelectorAll("ul.kept li[data-size]").forEach(function (li) {
        if (li.querySelector("input:checked")) total += parseInt(li.getAttribute("data-size"), 10) || 0;
      });
      return total;
    }

    function checkFiles() {
      if (!files || !files.files) return true;
      var total = keptSize();
      for (var i = 0; i < files.files.length; i++) total += files.files[i].size;
      if (maxAttach && total > maxAttach) {
        attachError.textContent = "These attachments are too large to send: " + (total / 1048576).toFixed(1) +
          " MiB in all, and this server takes up to " + (maxAttach / 1048576).toFixed(1) + " MiB.";
        attachError.hidden = false;
        files.value = "";
        return false;
      }
      attachError.hidden = true;
      return true;
    }

    function showKept(list) {
      var ul = form.querySelector("ul.kept");
      ul.textContent = "";
      list.forEach(function (a) {
        var li = document.createElement("li");
        li.setAttribute("data-size", String(a.size));
        var label = document.createElement("label");
        var box = document.createElement("input");
        box.type = "checkbox"; box.name = "keep"; box.value = a.ref; box.checked = true;
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + a.name));
        var size = document.createElement("span");
        size.className = "muted";
        size.textContent = " " + (a.size / 1024).toFixed(1) + " KiB";
        li.appendChild(label); li.appendChild(size);
        ul.appendChild(li);
      });
    }

    function save() {
      timer = null;
      if (sending) return Promise.resolve();
      if (saving) { dirty = true; return saving; }
      dirty = false;
      say("Saving draft…");
      var body = new FormData(form);
      var sentFiles = files && files.files && files.files.length > 0 ? files.files : null;
      // The kept attachments are numbered by the draft this save replaces: frozen until
      // the answer lists them as the new draft numbers them.
      var boxes = form.querySelectorAll("ul.kept input[name=keep]");
      boxes.forEach(function (b) { b.disabled = true; });
      saving = fetch(url, { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
        .then(function (res) {
          if (!res.ok || !res.j.draft) {
            boxes.forEach(function (b) { b.disabled = false; });
            say("Draft not saved: " + (res.j.error || "unknown error"));
            return;
          }
          form.elements.draft.value = String(res.j.draft);
          showKept(res.j.attachments || []);
          // The files are in the draft now (listed above): not uploaded again
          // (unless others were chosen meanwhile: those go with the next save).
          if (sentFiles && files.files === sentFiles) files.value = "";
          // (a forwarded message's parts are in the draft too)
          form.elements.forward_uid.value = "";
          say("Draft saved");
          form.setAttribute("data-draft-saved", String(res.j.draft));
        })
        .catch(function () {
          boxes.forEach(function (b) { b.disabled = false; });
          say("Draft not saved: no answer from the server (still logged in?)");
        })
        .then(function () {
          saving = null;
          if (dirty && !sending) schedule();
        });
      return saving;
    }

    function schedule() {
      if (timer) clearTimeout(timer);
      timer = setTimeout(save, DELAY);
    }

    form.addEventListener("input", function (e) {
      if (e.target === files) return;
      say("");
      schedule();
    });
    form.addEventListener("change", function (e) {
      if (e.target === files) { if (checkFiles()) schedule(); }
      else if (e.target.name === "keep" || e.target.name === "from") schedule();
    });
    form.addEventListener("submit", function (e) {
      if (!checkFiles()) { e.preventDefault(); return; }
      if (timer) { clearTimeout(timer); timer = null; }
      if (saving) {       // wait for the save in flight: the draft to remove is the one it makes
        e.preventDefault();
        sending = true;
        say("Sending…");
        saving.then(function () { form.submit(); });
        return;
      }
      sending = true;
      say("Sending…");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.compose[data-draft-url]").forEach(setup);
  });
})();
