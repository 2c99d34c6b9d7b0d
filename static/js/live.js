// Live updates over WebSockets for the shard monitor (botcore/consumers.py) and the audit log (audit/consumers.py).
// Without JavaScript or a socket the pages work as before: the shard table polls with htmx, the log reloads.
(function () {
  "use strict";
  if (!window.WebSocket) return;

  function open(path, onMessage, onState) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + path);
    socket.addEventListener("open", function () { onState(true); });
    socket.addEventListener("message", function (event) { onMessage(JSON.parse(event.data)); });
    socket.addEventListener("close", function () { onState(false); });
    return socket;
  }

  // --- Shard monitor: rows updated in place; htmx's polling only runs while the socket is down ---------------
  function ago(iso) {
    var seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (seconds < 1) return "now";
    if (seconds < 60) return seconds + (seconds === 1 ? " second ago" : " seconds ago");
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes === 1 ? "a minute ago" : minutes + " minutes ago";
    var hours = Math.floor(minutes / 60);
    return hours === 1 ? "an hour ago" : hours + " hours ago";
  }

  function cell(row, field) {
    return row.querySelector('[data-field="' + field + '"]');
  }

  function shardRows(shards, table) {
    var refresh = table.querySelectorAll("tr[data-shard]").length !== shards.length;
    shards.forEach(function (shard) {
      var row = table.querySelector('tr[data-shard="' + shard.shard_id + '"]');
      if (!row) { refresh = true; return; }
      var badge = cell(row, "status").querySelector(".badge");
      badge.className = "badge status-" + shard.status;
      badge.textContent = shard.status;
      cell(row, "latency").textContent = shard.latency_ms === null ? "–" : shard.latency_ms + " ms";
      cell(row, "process").textContent = shard.process;
      cell(row, "counts").textContent = shard.connects + " / " + shard.resumes;
      var beat = cell(row, "heartbeat");
      if (shard.last_heartbeat) {
        beat.dataset.at = shard.last_heartbeat;
        beat.textContent = ago(shard.last_heartbeat);
      }
    });
    return refresh; // a shard came or went: the next poll brings the whole table
  }

  function liveShards(table) {
    var state = { live: false, refresh: false };
    open(table.dataset.live, function (data) {
      var current = document.getElementById("shard-table");
      if (data.type === "shards" && current) state.refresh = shardRows(data.shards, current) || state.refresh;
    }, function (live) {
      state.live = live;
      if (live) document.body.dataset.liveShards = "on";
      else delete document.body.dataset.liveShards;
    });
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      if (event.detail.elt.id !== "shard-table" || !state.live) return;
      if (state.refresh) state.refresh = false;
      else event.preventDefault();
    });
    setInterval(function () {
      document.querySelectorAll('#shard-table [data-field="heartbeat"][data-at]').forEach(function (beat) {
        beat.textContent = ago(beat.dataset.at);
      });
    }, 1000);
  }

  // --- Audit log: new entries at the top of the newest, unfiltered page -------------------------------------
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; } catch (e) { return ""; }
  }

  function addEntries(entries) {
    var list = document.getElementById("entries");
    if (!list) return;
    var token = csrfToken();
    entries.slice().reverse().forEach(function (entry) { // oldest first, each on top: newest ends first
      if (document.getElementById("entry-" + entry.id)) return;
      var holder = document.createElement("div");
      holder.innerHTML = entry.html; // rendered (and escaped) by the server's own template
      var article = holder.firstElementChild;
      article.querySelectorAll("form[method=post]").forEach(function (form) {
        if (form.querySelector("input[name=csrfmiddlewaretoken]")) return;
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = "csrfmiddlewaretoken";
        input.value = token;
        form.appendChild(input);
      });
      var first = list.querySelector("article.entry");
      if (first) list.insertBefore(article, first);
      else list.insertBefore(article, list.querySelector("nav.pager"));
      var empty = list.querySelector(".no-entries");
      if (empty) empty.remove();
    });
  }

  var auditSocket = null;
  var auditPath = null;

  function liveAudit() {
    var list = document.getElementById("entries");
    var path = list && list.dataset.live ? list.dataset.live : null;
    if (path === auditPath) return;
    if (auditSocket) auditSocket.close();
    auditSocket = null;
    auditPath = path;
    if (path) {
      auditSocket = open(path, function (data) {
        if (data.type === "entries") addEntries(data.entries);
      }, function () {});
    }
  }

  function start() {
    var table = document.getElementById("shard-table");
    if (table && table.dataset.live) liveShards(table);
    if (document.getElementById("entries")) {
      liveAudit();
      // Filters and pages swap the list: the tail follows only the newest, unfiltered page.
      document.body.addEventListener("htmx:afterSwap", liveAudit);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
