(function () {
  "use strict";
  var DATA = null;
  var DECISIONS = ["created", "accepted", "rejected (auth events)", "rejected (state before)", "soft-failed", "outlier", "dropped"];
  function data() {
    if (DATA) { return DATA; }
    DATA = JSON.parse(document.getElementById("mxsim-data").textContent);
    DATA.rooms.forEach(function (room) {
      room.index = {};
      room.events.forEach(function (e, i) { room.index[e.i] = i; });
    });
    return DATA;
  }
  function esc(text) {
    return String(text).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;" }[c];
    });
  }
  function sec(ms) { return (ms / 1000).toFixed(1) + " s"; }
  function link(id) { return "<a href=\"#event=" + esc(id) + "\"><code>" + esc(id) + "</code></a>"; }
  function find(id) {
    var rooms = data().rooms;
    for (var r = 0; r < rooms.length; r++) {
      var at = rooms[r].index[id];
      if (at !== undefined) { return [rooms[r], rooms[r].events[at]]; }
    }
    return null;
  }
  // The state the DAG implies before and after an event: walk first prev events back to
  // the create event, then apply each event's delta and own entry on the way down.
  function states(room, event) {
    var chain = [];
    var e = event;
    while (e) {
      if (e.n) { return null; }
      chain.push(e);
      e = e.p.length ? room.events[room.index[e.p[0]]] : null;
    }
    var state = {};
    var before = null;
    for (var i = chain.length - 1; i >= 0; i--) {
      var c = chain[i];
      c.b.forEach(function (d) {
        var key = d[0] + "\u0000" + d[1];
        if (d[2] === null) { delete state[key]; } else { state[key] = d[2]; }
      });
      if (i === 0) { before = Object.assign({}, state); }
      if (c.x) { state[c.y + "\u0000" + c.k] = c.i; }
    }
    return [before, state];
  }
  function describe(room, id) {
    var at = room.index[id];
    if (at === undefined) { return ""; }
    var e = room.events[at];
    return e.y + (e.k !== null ? " " + e.k : "");
  }
  function stateTable(room, before, after) {
    var keys = Object.keys(Object.assign({}, before, after)).sort();
    var changed = keys.filter(function (k) { return before[k] !== after[k]; });
    var rows = function (list) {
      return list.map(function (k) {
        var parts = k.split("\u0000");
        var cls = before[k] !== after[k] ? " class=\"changed\"" : "";
        return "<tr" + cls + "><td>" + esc(parts[0]) + "</td><td>" + esc(parts[1]) + "</td><td>" +
          (before[k] ? link(before[k]) : "—") + "</td><td>" + (after[k] ? link(after[k]) : "—") + "</td></tr>";
      }).join("");
    };
    var head = "<tr><th>type</th><th>state key</th><th>before</th><th>after</th></tr>";
    var out = "<p>" + keys.length + " keys, " + changed.length + " changed by this event.</p>";
    if (changed.length) { out += "<table class=\"state-changed\">" + head + rows(changed) + "</table>"; }
    out += "<details><summary>every key before and after</summary><table class=\"state-full\">" + head + rows(keys) + "</table></details>";
    return out;
  }
  function showEvent(id) {
    var found = find(id);
    var panel = document.getElementById("panel-body");
    if (!found) {
      panel.innerHTML = "<p>No event <code>" + esc(id) + "</code> in this report.</p>";
      return;
    }
    var room = found[0], e = found[1];
    var html = "<h3 class=\"panel-event\" data-id=\"" + esc(e.i) + "\">" + esc(e.y) + (e.k !== null ? " <code>" + esc(e.k) + "</code>" : "") + "</h3>";
    html += "<table><tr><th>event id</th><td><code>" + esc(e.i) + "</code></td></tr>";
    html += "<tr><th>room</th><td>" + esc(room.label || room.id) + "</td></tr>";
    html += "<tr><th>sender</th><td>" + esc(e.s) + "</td></tr><tr><th>origin</th><td><a href=\"#server=" + esc(e.o) + "\">" + esc(e.o) + "</a></td></tr>";
    html += "<tr><th>depth</th><td>" + e.d + "</td></tr><tr><th>created</th><td>" + (e.c === null ? "not recorded" : sec(e.c)) + "</td></tr>";
    html += "<tr><th>prev events</th><td>" + (e.p.map(link).join("<br>") || "—") + "</td></tr></table>";
    html += "<h4>Auth events</h4><ul class=\"auth\">" + (e.a.map(function (a) { return "<li>" + link(a) + " " + esc(describe(room, a)) + "</li>"; }).join("") || "<li>none</li>") + "</ul>";
    var rows = e.r.slice().sort(function (x, y) { return x[1] - y[1] || x[0] - y[0]; });
    var seen = {};
    rows.forEach(function (r) { seen[r[0]] = true; });
    var never = room.servers.filter(function (s, i) { return !seen[i]; });
    html += "<h4>Decisions (" + rows.length + ")</h4>";
    if (never.length) { html += "<p class=\"warn\">No decision recorded at " + never.length + " server(s): " + esc(never.slice(0, 30).join(" ")) + (never.length > 30 ? " …" : "") + "</p>"; }
    html += "<table class=\"decisions\"><tr><th>server</th><th>decision</th><th>at</th><th>after creation</th><th>reason</th></tr>";
    rows.slice(0, 400).forEach(function (r) {
      var server = room.servers[r[0]] || "?";
      var cls = r[2] >= 2 && r[2] <= 4 ? " class=\"bad\"" : "";
      html += "<tr" + cls + "><td><a href=\"#server=" + esc(server) + "\">" + esc(server) + "</a></td><td>" + DECISIONS[r[2]] + "</td><td>" + (r[1] / 1000).toFixed(3) + " s" +
        "</td><td>" + (e.c === null ? "" : (r[1] >= e.c ? "+" : "\u2212") + Math.abs(r[1] - e.c) + " ms") + "</td><td>" + esc(r[3] || "") + "</td></tr>";
    });
    html += "</table>";
    if (rows.length > 400) { html += "<p>… and " + (rows.length - 400) + " more.</p>"; }
    html += "<h4>State (as the DAG implies it)</h4>";
    var s = states(room, e);
    html += s ? stateTable(room, s[0], s[1]) : "<p>Not replayed: an ancestor has no well-formed PDU or no room version was recorded.</p>";
    html += "<h4>PDU</h4><pre>" + esc(e.j ? JSON.stringify(e.j, null, 1) : "not recorded") + "</pre>";
    panel.innerHTML = html;
    document.querySelectorAll("g.node.selected").forEach(function (n) { n.classList.remove("selected"); });
    var node = document.querySelector("g.node[data-id=\"" + CSS.escape(e.i) + "\"]");
    if (!node) {
      document.querySelectorAll("g.node.run").forEach(function (n) {
        if ((n.getAttribute("data-ids") || "").split(" ").indexOf(e.i) >= 0) { node = n; }
      });
    }
    if (node) {
      node.classList.add("selected");
      node.scrollIntoView({ block: "center", inline: "center" });
    }
  }
  function stateAt(room, server, t) {
    var list = room.states[server];
    var hash = null;
    if (!list) { return null; }
    for (var i = 0; i < list.length; i += 2) {
      if (list[i] > t) { break; }
      hash = room.hashes[list[i + 1]];
    }
    return hash;
  }
  function joinedAt(room, server, t) {
    return (room.joined[server] || []).some(function (span) { return t >= span[0] && (span[1] === null || t < span[1]); });
  }
  function showServer(name) {
    var panel = document.getElementById("panel-body");
    var html = "<h3 class=\"panel-server\" data-server=\"" + esc(name) + "\">Server " + esc(name) + "</h3>";
    data().rooms.forEach(function (room) {
      var index = room.servers.indexOf(name);
      var created = 0, received = 0, bad = 0;
      room.events.forEach(function (e) {
        e.r.forEach(function (r) {
          if (r[0] !== index) { return; }
          if (r[2] === 0) { created++; } else { received++; }
          if (r[2] >= 2 && r[2] <= 4) { bad++; }
        });
      });
      var spans = (room.joined[name] || []).map(function (s) { return sec(s[0]) + "–" + (s[1] === null ? "end" : sec(s[1])); });
      var changes = (room.states[name] || []).length / 2;
      html += "<h4>" + esc(room.label || room.id) + "</h4><table><tr><th>joined</th><td>" + (spans.join(", ") || "never") + "</td></tr>" +
        "<tr><th>events created</th><td>" + created + "</td></tr><tr><th>events received</th><td>" + received + " (" + bad + " rejected or soft-failed)</td></tr>" +
        "<tr><th>state changes</th><td>" + changes + "</td></tr></table>";
    });
    var rows = document.querySelectorAll("tr.divergence");
    var mine = [];
    rows.forEach(function (row) {
      var hit = row.getAttribute("data-a") === name || row.getAttribute("data-b") === name;
      row.classList.toggle("highlight", hit);
      if (hit) { mine.push(row.id); }
    });
    html += "<p>" + (mine.length ? mine.length + " divergence row(s) involve " + esc(name) + ": " + mine.map(function (id) { return "<a href=\"#" + id + "\">" + id + "</a>"; }).join(" ") : "No divergence row involves " + esc(name) + ".") + "</p>";
    panel.innerHTML = html;
    var lane = document.getElementById("lane-" + name);
    if (!lane) {
      document.querySelectorAll("g.lane.group").forEach(function (g) {
        if ((g.getAttribute("data-servers") || "").split(" ").indexOf(name) >= 0) { lane = g; }
      });
    }
    document.querySelectorAll("g.lane.selected").forEach(function (n) { n.classList.remove("selected"); });
    if (lane) {
      lane.classList.add("selected");
      lane.scrollIntoView({ block: "center" });
    }
  }
  function showTime(t) {
    var panel = document.getElementById("panel-body");
    var html = "<h3 class=\"panel-time\" data-t=\"" + t + "\">At " + sec(t) + "</h3>";
    data().rooms.forEach(function (room) {
      var groups = {};
      var order = [];
      room.servers.forEach(function (server) {
        if (!joinedAt(room, server, t)) { return; }
        var hash = stateAt(room, server, t) || "(no state yet)";
        if (!groups[hash]) { groups[hash] = []; order.push(hash); }
        groups[hash].push(server);
      });
      order.sort(function (a, b) { return groups[b].length - groups[a].length; });
      var created = room.events.filter(function (e) { return e.c !== null && e.c <= t; }).length;
      html += "<h4>" + esc(room.label || room.id) + "</h4><p>" + order.length + " distinct current state(s) among joined servers; " + created + " events created so far.</p><table><tr><th>state hash</th><th>servers</th></tr>";
      order.forEach(function (hash) {
        var list = groups[hash];
        html += "<tr><td><code>" + esc(hash) + "</code></td><td>" + list.length + ": " + list.slice(0, 40).map(function (s) { return "<a href=\"#server=" + esc(s) + "\">" + esc(s) + "</a>"; }).join(" ") + (list.length > 40 ? " …" : "") + "</td></tr>";
      });
      html += "</table>";
    });
    panel.innerHTML = html;
    document.querySelectorAll("svg.timeline").forEach(function (svg) {
      var meta = svg.querySelector(".timeline-meta");
      var x = +meta.getAttribute("data-x0") + t / +meta.getAttribute("data-end-ms") * +meta.getAttribute("data-width");
      var line = svg.querySelector("line.cursor");
      if (!line) {
        line = document.createElementNS("http://www.w3.org/2000/svg", "line");
        line.setAttribute("class", "cursor");
        line.setAttribute("stroke", "#c2185b");
        line.setAttribute("stroke-width", "2");
        svg.appendChild(line);
      }
      line.setAttribute("x1", x); line.setAttribute("x2", x);
      line.setAttribute("y1", 30); line.setAttribute("y2", svg.viewBox.baseVal.height - 50);
    });
    data().rooms.forEach(function (room) {
      document.querySelectorAll("g.node[data-id]").forEach(function (n) {
        var at = room.index[n.getAttribute("data-id")];
        if (at === undefined) { return; }
        var c = room.events[at].c;
        n.classList.toggle("later", c !== null && c > t);
      });
    });
  }
  function route() {
    var hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    var parts = {};
    hash.split("&").forEach(function (part) {
      var at = part.indexOf("=");
      if (at > 0) { parts[part.slice(0, at)] = part.slice(at + 1); }
    });
    if (!parts.event && !parts.server && parts.t === undefined) { return; }
    document.getElementById("panel").classList.add("open");
    if (parts.event) { showEvent(parts.event); }
    else if (parts.server) { showServer(parts.server); }
    else { showTime(+parts.t); }
  }
  function zoom(view, factor) {
    var svg = view.querySelector("svg");
    var w = +svg.getAttribute("width"), h = +svg.getAttribute("height");
    var z = factor === "fit" ? Math.min(1, view.clientWidth / w) : factor === 1 ? 1 : (+view.getAttribute("data-zoom") || 1) * factor;
    z = Math.max(0.05, Math.min(4, z));
    view.setAttribute("data-zoom", z);
    svg.style.width = (w * z) + "px";
    svg.style.height = (h * z) + "px";
  }
  document.addEventListener("click", function (ev) {
    var target = ev.target;
    var button = target.closest("button[data-zoom]");
    if (button) {
      var z = button.getAttribute("data-zoom");
      zoom(button.closest(".figure-box").querySelector(".dagview"), z === "fit" ? "fit" : +z);
      return;
    }
    if (target.closest("#panel-close")) {
      document.getElementById("panel").classList.remove("open");
      history.replaceState(null, "", location.pathname);
      return;
    }
    var node = target.closest("g.node");
    if (node) {
      var id = node.getAttribute("data-id") || node.getAttribute("data-first");
      location.hash = "event=" + id;
      return;
    }
    var lane = target.closest("g.lane");
    var svg = target.closest("svg.timeline");
    if (svg) {
      var meta = svg.querySelector(".timeline-meta");
      var box = svg.getBoundingClientRect();
      var x = (ev.clientX - box.left) * svg.viewBox.baseVal.width / box.width;
      var x0 = +meta.getAttribute("data-x0"), width = +meta.getAttribute("data-width");
      if (x < x0 && lane) {
        var names = lane.getAttribute("data-servers").split(" ");
        location.hash = "server=" + names[0];
      } else if (x >= x0) {
        location.hash = "t=" + Math.round((x - x0) / width * +meta.getAttribute("data-end-ms"));
      }
    }
  });
  document.addEventListener("wheel", function (ev) {
    var view = ev.target.closest && ev.target.closest(".dagview");
    if (view && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      zoom(view, ev.deltaY < 0 ? 1.15 : 1 / 1.15);
    }
  }, { passive: false });
  window.addEventListener("hashchange", route);
  document.addEventListener("DOMContentLoaded", route);
})();
