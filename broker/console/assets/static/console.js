// toolgate console: progressive enhancement only. Every page works without
// this script; with it, expiry times count down and the inbox stays current.
"use strict";

(function () {
  // Expiry countdowns: <time data-countdown datetime="...">.
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var left = Math.round((Date.parse(el.getAttribute("datetime")) - now) / 1000);
      if (isNaN(left)) return;
      if (left <= 0) { el.textContent = "expired"; return; }
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = "in " + (h ? h + "h " : "") + (h || m ? m + "m " : "") + s + "s";
    });
  }

  // Live inbox: fetch the list every few seconds; replace it when it
  // changed, unless the reader is typing a reason (then offer a button).
  function live(box) {
    var url = box.getAttribute("data-live");
    var every = parseInt(box.getAttribute("data-every"), 10) || 5000;
    var status = document.getElementById("live-status");
    var pending = null;

    function current() { return box.querySelector(".inbox-list"); }
    function busy() {
      var active = document.activeElement;
      if (active && box.contains(active) && active.tagName === "TEXTAREA") return true;
      return Array.prototype.some.call(box.querySelectorAll("textarea"), function (t) { return t.value !== ""; });
    }
    function show(list) {
      box.replaceChildren(list);
      pending = null;
      var n = parseInt(list.getAttribute("data-count"), 10) || 0;
      status.textContent = "Updated: " + n + (n === 1 ? " request waits" : " requests wait") + " for you.";
      tick();
    }
    function offer(list) {
      pending = list;
      status.replaceChildren(document.createTextNode("The inbox changed. "));
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = "Show the latest requests";
      b.addEventListener("click", function () { if (pending) show(pending); });
      status.appendChild(b);
    }
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (resp) {
        if (resp.status === 401) { window.location.assign("/console/signin?why=refused"); return null; }
        if (!resp.ok) return null;
        return resp.text();
      }).then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var list = doc.querySelector(".inbox-list");
        var cur = current();
        if (!list || !cur || list.getAttribute("data-version") === cur.getAttribute("data-version")) return;
        if (busy()) offer(document.adoptNode(list)); else show(document.adoptNode(list));
      }).catch(function () { /* offline for a moment: try again next round */ });
    }
    setInterval(poll, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    var box = document.getElementById("inbox");
    if (box && box.getAttribute("data-live")) live(box);
  });
})();
