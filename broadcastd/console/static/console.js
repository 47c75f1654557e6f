// Live updates for the console's pages over Server-Sent Events (/events).
// Only textContent and data attributes are written: nothing from the server becomes markup.
(function () {
  "use strict";
  var labelsEl = document.getElementById("labels");
  if (!labelsEl || !window.EventSource) { return; }
  var labels = JSON.parse(labelsEl.textContent);

  function each(selector, fn) {
    Array.prototype.forEach.call(document.querySelectorAll(selector), fn);
  }

  function attr(name, value) {
    return "[" + name + "=\"" + String(value).replace(/["\\]/g, "\\$&") + "\"]";
  }

  // The commune's clock, as the server renders it, whatever the phone's own time zone.
  var clock = new Intl.DateTimeFormat("en-GB", {
    timeZone: labels.timezone, hourCycle: "h23", hour: "2-digit", minute: "2-digit",
    day: "2-digit", month: "2-digit", year: "numeric"
  });

  function when(ts) {
    if (ts === null || ts === undefined) { return "-"; }
    var p = {};
    clock.formatToParts(new Date(ts * 1000)).forEach(function (part) { p[part.type] = part.value; });
    return p.hour + ":" + p.minute + " " + p.day + "/" + p.month + "/" + p.year;
  }

  function applyNode(n) {
    each(attr("data-node", n.node), function (row) {
      var badge = row.querySelector("[data-state]");
      if (badge && badge.getAttribute("data-state") !== n.state) {
        badge.setAttribute("data-state", n.state);
        badge.className = "state state-" + n.state;
        badge.textContent = labels[n.state] || n.state;
      }
      var seen = row.querySelector("[data-field=last_seen]");
      if (seen) { seen.textContent = when(n.last_seen); }
      ["rssi", "volume"].forEach(function (field) {
        var cell = row.querySelector("[data-field=" + field + "]");
        if (cell) { cell.textContent = n[field] === null ? "-" : String(n[field]) + (field === "rssi" ? " dBm" : ""); }
      });
      var power = row.querySelector("[data-field=power]");
      if (power) { power.textContent = powerText(n.telemetry); }
      var key = row.querySelector("[data-field=key]");
      if (key && n.key_rotation) { keyState(key, n.key_rotation.status); }
    });
  }

  // As macros.html's power(): "battery 62% · 41°C", "mains", or "-".
  function powerText(t) {
    if (!t) { return "-"; }
    var word = t.mains === true ? labels.mains : (t.mains === false ? labels.battery : "");
    var pct = typeof t.battery_pct === "number" ? Math.round(t.battery_pct) + "%" : "";
    var temp = typeof t.temperature_c === "number" ? Math.round(t.temperature_c) + "°C" : "";
    var head = [word, pct].filter(Boolean).join(" ");
    return [head, temp].filter(Boolean).join(" · ") || "-";
  }

  // As macros.html's key_state(): the word, and a refusal's reason as plain text.
  function keyState(cell, status) {
    var cut = status.indexOf(": ");
    var kind = cut < 0 ? status : status.slice(0, cut);
    if (kind !== "confirmed" && kind !== "pending") { kind = "refused"; }
    var badge = document.createElement("span");
    badge.className = "key key-" + kind;
    badge.setAttribute("data-key", kind);
    badge.textContent = labels[kind];
    cell.textContent = "";
    cell.appendChild(badge);
    if (cut >= 0) {
      var reason = document.createElement("span");
      reason.className = "muted detail";
      reason.textContent = " " + status.slice(cut + 2, cut + 82);
      cell.appendChild(reason);
    }
  }

  function applyHamlet(h) {
    each(attr("data-hamlet", h.id), function (card) {
      ["online", "stale", "offline", "total"].forEach(function (key) {
        var el = card.querySelector("[data-count=" + key + "]");
        if (el) { el.textContent = String(h["nodes_" + key]); }
      });
    });
  }

  function fill(template, value) { return template.replace("{}", String(value)); }

  function paragraph(className, text) {
    var p = document.createElement("p");
    if (className) { p.className = className; }
    p.textContent = text;
    return p;
  }

  function link(href, text, className) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    if (className) { a.className = className; }
    return a;
  }

  // A pending emergency request, built as the server renders it in base.html.
  function requestItem(r) {
    var li = document.createElement("li");
    li.setAttribute("data-request", r.id);
    li.appendChild(paragraph("request-text", r.text));
    li.appendChild(paragraph("muted", [
      r.id, fill(labels.asked_by, r.operator), r.hamlet_names.join(", "),
      fill(labels.households, r.households), fill(labels.until, when(r.expires_at))
    ].join(" · ")));
    var href = "/requests/" + encodeURIComponent(r.id);
    if (r.operator === labels.me) {
      var mine = paragraph("request-state", labels.mine + " ");
      mine.appendChild(link(href, labels.details));
      li.appendChild(mine);
    } else if (labels.approver) {
      var review = link(href, labels.review, "button danger");
      review.setAttribute("data-review", r.id);
      var p = paragraph("", "");
      p.appendChild(review);
      li.appendChild(p);
    }
    return li;
  }

  function applyRequests(list) {
    var section = document.getElementById("requests");
    if (!section || !list) { return; }
    var ids = list.map(function (r) { return r.id; }).join(",");
    if (section.getAttribute("data-ids") === ids) { return; }
    section.setAttribute("data-ids", ids);
    var ul = section.querySelector("ul");
    while (ul.firstChild) { ul.removeChild(ul.firstChild); }
    list.forEach(function (r) { ul.appendChild(requestItem(r)); });
    section.hidden = list.length === 0;
  }

  function apply(state) {
    var up = state.daemon.running;
    document.body.setAttribute("data-daemon", up ? "up" : "down");
    var down = document.getElementById("daemon-down");
    if (down) { down.hidden = up; }
    var broker = document.getElementById("broker-down");
    if (broker) { broker.hidden = !up || state.daemon.connected; }
    state.nodes.forEach(applyNode);
    state.hamlets.forEach(applyHamlet);
    applyRequests(state.requests);
    document.body.setAttribute("data-live-at", String(state.taken_at));
  }

  var source = new EventSource("/events");
  source.addEventListener("state", function (e) { apply(JSON.parse(e.data)); });
  source.addEventListener("expired", function () {
    source.close();
    window.alert(labels.expired);
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
  });
})();

// The announce form: ticking a hamlet means "only these hamlets" (the server reads the radio).
(function () {
  "use strict";
  var only = document.getElementById("target-list");
  if (!only) { return; }
  Array.prototype.forEach.call(document.querySelectorAll('input[name="hamlet"]'), function (box) {
    box.addEventListener("change", function () { if (box.checked) { only.checked = true; } });
  });
})();

// A recording made in the browser (MediaRecorder) or an audio file from the phone, heard back in
// the page and sent with the Phát ngay form as base64url in its hidden `audio` field (the server
// checks it again). Limits are checked here so the message comes before any upload.
(function () {
  "use strict";
  var section = document.getElementById("recording");
  var labelsEl = document.getElementById("recording-labels");
  if (!section || !labelsEl) { return; }
  var labels = JSON.parse(labelsEl.textContent);
  var record = document.getElementById("record");
  var stop = document.getElementById("record-stop");
  var file = document.getElementById("audio-file");
  var status = document.getElementById("recording-status");
  var preview = document.getElementById("recording-preview");
  var data = document.getElementById("audio-data");
  var drop = document.getElementById("drop-recording");
  var recorder = null;
  var timer = null;
  var started = 0;

  function say(template, values) {
    status.textContent = template.replace(/\{(\w+)\}/g, function (all, name) {
      return values && values[name] !== undefined ? String(values[name]) : all;
    });
  }

  function hear(blob) {
    if (preview.src) { URL.revokeObjectURL(preview.src); }
    preview.src = URL.createObjectURL(blob);
    preview.hidden = false;
    section.setAttribute("data-bytes", String(blob.size));
    attach(blob);
  }

  // The file as base64url: `-` and `_` need no percent-encoding in a form, so what the server
  // receives is the size it expects.
  function attach(blob) {
    data.value = "";
    section.setAttribute("data-attached", "no");
    var reader = new FileReader();
    reader.addEventListener("load", function () {
      var url = String(reader.result);
      data.value = url.slice(url.indexOf(",") + 1).replace(/\+/g, "-").replace(/\//g, "_");
      section.setAttribute("data-attached", "yes");
      drop.hidden = false;
    });
    reader.readAsDataURL(blob);
  }

  drop.addEventListener("click", function () {
    data.value = "";
    file.value = "";
    preview.hidden = true;
    drop.hidden = true;
    section.setAttribute("data-attached", "no");
    status.textContent = "";
  });

  function kib(size) { return Math.max(1, Math.round(size / 1024)); }

  if (!window.isSecureContext || !navigator.mediaDevices || !window.MediaRecorder) {
    say(labels.insecure);
  } else {
    record.disabled = false;
  }

  record.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      var chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.addEventListener("dataavailable", function (e) { chunks.push(e.data); });
      recorder.addEventListener("stop", function () {
        stream.getTracks().forEach(function (track) { track.stop(); });
        window.clearTimeout(timer);
        var blob = new Blob(chunks, { type: recorder.mimeType });
        hear(blob);
        say(labels.recorded, { seconds: Math.round((Date.now() - started) / 1000), kib: kib(blob.size) });
        record.disabled = false;
        stop.disabled = true;
      });
      started = Date.now();
      recorder.start();
      timer = window.setTimeout(function () { recorder.stop(); }, labels.max_seconds * 1000);
      record.disabled = true;
      stop.disabled = false;
      say(labels.recording, { seconds: labels.max_seconds });
    }).catch(function (err) {
      say(labels.denied, { reason: err && err.name ? err.name : String(err) });
    });
  });

  stop.addEventListener("click", function () {
    if (recorder && recorder.state === "recording") { recorder.stop(); }
  });

  file.addEventListener("change", function () {
    var chosen = file.files && file.files[0];
    if (!chosen) { return; }
    if (chosen.size > labels.max_mib * 1024 * 1024) {
      say(labels.too_big, { mib: (chosen.size / 1048576).toFixed(1), limit: labels.max_mib });
      return;
    }
    if (chosen.type && chosen.type.indexOf("audio/") !== 0) {
      say(labels.not_audio);
      return;
    }
    hear(chosen);
    say(labels.chosen, { name: chosen.name, kib: kib(chosen.size) });
  });
})();
