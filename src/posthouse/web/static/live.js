// live: plain script, no build step (see the issue-23 contract).
// A page showing a folder (<body data-account="ID" data-folder="NAME">, or
// <meta name="posthouse-account"> / <meta name="posthouse-folder">) listens to
// GET /events; when that folder changes, htmx is asked to refresh whatever
// listens for "posthouse:refresh" on body (the message list); any folder's
// change fires "posthouse:folders" (the folder tree's counts).
(function () {
  "use strict";

  function setting(name) {
    var fromBody = document.body && document.body.dataset ? document.body.dataset[name] : undefined;
    if (fromBody) { return fromBody; }
    var meta = document.querySelector('meta[name="posthouse-' + name + '"]');
    return meta ? meta.getAttribute("content") : null;
  }

  function fire(name, detail) {
    if (window.htmx) {
      window.htmx.trigger(document.body, name, detail);
    } else {
      document.body.dispatchEvent(new CustomEvent(name, {detail: detail}));
    }
  }

  function start() {
    var account = setting("account");
    var folder = setting("folder");
    if (!account || !/^[0-9]+$/.test(account) || !window.EventSource) { return; }
    folder = folder || "INBOX";
    var url = "/events?account=" + encodeURIComponent(account) + "&folder=" + encodeURIComponent(folder);
    var source = null;
    var backoff = 1000;
    var timers = {};

    // Several changes in a burst: one refresh each, after the burst.
    function soon(name, detail) {
      clearTimeout(timers[name]);
      timers[name] = setTimeout(function () { fire(name, detail); }, 150);
    }

    function connect() {
      source = new EventSource(url);
      source.addEventListener("hello", function () {
        backoff = 1000;
        document.body.setAttribute("data-live", "on");
      });
      source.addEventListener("refresh", function (e) {
        var data;
        try { data = JSON.parse(e.data); } catch (err) { return; }
        if (!data || typeof data.folder !== "string") { return; }
        var changes = Array.isArray(data.changes) ? data.changes : [];
        if (data.folder === folder || data.folder === "*") {
          soon("posthouse:refresh", {folder: folder, changes: changes});
        }
        soon("posthouse:folders", {folder: data.folder, changes: changes});
      });
      source.addEventListener("error", function () {
        document.body.setAttribute("data-live", "off");
        // The browser retries by itself unless the stream was refused (closed):
        // then try again later, waiting longer each time (at most a minute).
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(connect, backoff);
          backoff = Math.min(backoff * 2, 60000);
        }
      });
    }

    connect();
    window.addEventListener("pagehide", function () { if (source) { source.close(); } });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
