// Live progress of the jobs page: polls /jobs.json and rewrites the table's rows.
// Values are set with textContent (never parsed as HTML). Without JavaScript the page refreshes itself.
"use strict";
(function () {
  var table = document.getElementById("jobs");
  if (!table || !window.fetch) { return; }
  var url = table.getAttribute("data-source");
  function fmt(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString("en"); }
  function duration(s) {
    if (s === null || s === undefined) { return ""; }
    s = Math.floor(s);
    if (s >= 3600) { return Math.floor(s / 3600) + "h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m"; }
    return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  }
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }
  function update(jobs) {
    var body = table.tBodies[0];
    var rows = document.createDocumentFragment();
    jobs.forEach(function (j) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-job", String(j.job_id));
      cell(tr, String(j.job_id)); cell(tr, j.model || ""); cell(tr, j.state);
      var td = cell(tr, "");
      var bar = document.createElement("progress"); bar.max = 100; bar.value = j.percent; bar.textContent = j.percent + " %";
      var label = document.createElement("span"); label.textContent = " " + j.percent + " %";
      td.appendChild(bar); td.appendChild(label);
      cell(tr, fmt(j.sources_done) + " / " + fmt(j.n_sources)).className = "num";
      cell(tr, j.batches_done + " / " + j.batches_running + " / " + j.batches_failed + " / " + j.n_batches).className = "num";
      cell(tr, j.rate === null ? "" : j.rate.toPrecision(3)).className = "num";
      cell(tr, duration(j.eta_s)); cell(tr, (j.created_at || "").replace("T", " ").slice(0, 19));
      rows.appendChild(tr);
    });
    if (!jobs.length) { var tr = document.createElement("tr"); cell(tr, "No inference job yet.").colSpan = 9; rows.appendChild(tr); }
    body.replaceChildren(rows);
    document.getElementById("jobs-updated").textContent = "updated " + new Date().toLocaleTimeString();
  }
  function poll() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (doc) { if (doc && doc.jobs) { update(doc.jobs); } })
      .catch(function () { /* try again at the next tick */ })
      .then(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
})();
