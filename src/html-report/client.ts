/**
 * The script the HTML report runs in the browser (plain ES2017, no imports):
 * it reads the embedded data and draws each chart with Chart.js, then leaves
 * `window.ppsimCharts` = { chart kind: points drawn } for tests to read.
 */
export const CLIENT_SCRIPT = String.raw`
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("ppsim-data").textContent);
  var runs = data.runs;
  var multi = runs.length > 1;
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var drawn = {};
  window.ppsimCharts = drawn;
  Chart.defaults.animation = false;
  Chart.defaults.responsive = false;
  Chart.defaults.font.size = 12;
  function color(i) { return COLORS[i % COLORS.length]; }
  function line(label, points, i, extra) {
    var d = { label: label, data: points, borderColor: color(i), backgroundColor: color(i) + "55", pointRadius: 0, borderWidth: 1.5 };
    for (var k in extra || {}) d[k] = extra[k];
    return d;
  }
  function xy(ts, ys) { return ts.map(function (t, i) { return { x: t, y: ys[i] }; }); }
  function axis(title, extra) {
    var a = { title: { display: true, text: title } };
    for (var k in extra || {}) a[k] = extra[k];
    return a;
  }
  function draw(kind, points, why, config) {
    var canvas = document.querySelector('canvas[data-chart="' + kind + '"]');
    drawn[kind] = points;
    if (points === 0) {
      var note = document.createElement("p");
      note.className = "empty";
      note.textContent = "nothing to draw: " + why;
      canvas.replaceWith(note);
      return;
    }
    new Chart(canvas, config);
  }
  var sec = function (s) { return s.t_ms / 1000; };

  // 1. Pages present at the destination over time, by how they came.
  (function () {
    var sets = [], n = 0;
    runs.forEach(function (r, ri) {
      var pages = r.report.mem_bytes / r.report.page_size;
      var pct = function (x) { return (100 * x) / pages; };
      var ts = r.samples.map(sec);
      n += r.samples.length;
      if (!multi) {
        ["precopy", "background", "demand"].forEach(function (k, i) {
          sets.push(line(k === "precopy" ? "pre-copy" : k, xy(ts, r.samples.map(function (s) { return pct(s[k]); })), i, { fill: i === 0 ? "origin" : "-1", stack: "p" }));
        });
      } else {
        sets.push(line(r.label, xy(ts, r.samples.map(function (s) { return pct(s.precopy + s.background + s.demand); })), ri));
      }
    });
    draw("presence", n, "no samples", { type: "line", data: { datasets: sets }, options: { scales: { x: axis("time since migration start (s)", { type: "linear" }), y: axis("pages present (%)", { min: 0, max: 100, stacked: !multi }) } } });
  })();

  // 2. Throughput per channel.
  (function () {
    var sets = [], n = 0;
    runs.forEach(function (r, ri) {
      ["urgent", "bulk"].forEach(function (ch, ci) {
        var pts = [];
        for (var i = 1; i < r.samples.length; i++) {
          var a = r.samples[i - 1], b = r.samples[i], dt = (b.t_ms - a.t_ms) / 1000;
          if (dt > 0) pts.push({ x: b.t_ms / 1000, y: (b[ch + "_bytes"] - a[ch + "_bytes"]) / 1048576 / dt });
        }
        n += pts.length;
        sets.push(line((multi ? r.label + " " : "") + ch, pts, multi ? ri * 2 + ci : ci, { stepped: "before" }));
      });
    });
    draw("throughput", n, "no samples", { type: "line", data: { datasets: sets }, options: { scales: { x: axis("time since migration start (s)", { type: "linear" }), y: axis("MiB/s (both directions)", { min: 0 }) } } });
  })();

  // 3. Pages sent and dirty rate per pre-copy round.
  (function () {
    var most = Math.max.apply(null, runs.map(function (r) { return r.report.rounds.length; }));
    var labels = [];
    for (var i = 1; i <= most; i++) labels.push("round " + i);
    var sets = [], n = 0;
    runs.forEach(function (r, ri) {
      var rs = r.report.rounds;
      n += rs.length;
      sets.push({ type: "bar", label: (multi ? r.label + " " : "") + "pages sent", data: rs.map(function (x) { return x.pages; }), backgroundColor: color(ri * 2), yAxisID: "y" });
      sets.push(line((multi ? r.label + " " : "") + "dirty rate", rs.map(function (x, i) {
        return i + 1 < rs.length && x.ms > 0 ? (rs[i + 1].pages * r.report.page_size) / 1048576 / (x.ms / 1000) : null;
      }), ri * 2 + 1, { type: "line", yAxisID: "y2", pointRadius: 3 }));
    });
    draw("rounds", n, "no pre-copy rounds in this run", { type: "bar", data: { labels: labels, datasets: sets }, options: { scales: { y: axis("pages sent in the round (the rest to send)", { min: 0 }), y2: axis("dirtied during the round (MiB/s)", { position: "right", min: 0, grid: { drawOnChartArea: false } }) } } });
  })();

  // 4. Fault latency histogram (power-of-two µs buckets).
  (function () {
    var hists = [];
    runs.forEach(function (r) {
      hists.push({ label: (multi ? r.label + " " : "") + "demand requests", h: r.faultHistogram || [] });
      var g = r.report.guest;
      if (!multi && g && g.faults) hists.push({ label: "vCPU waits (QEMU postcopy-latency-dist)", h: g.faults.postcopy_latency_dist });
    });
    var top = 0, lo = 99, n = 0;
    hists.forEach(function (x) { x.h.forEach(function (c, i) { if (c > 0) { lo = Math.min(lo, i); top = Math.max(top, i); n += c; } }); });
    var labels = [];
    for (var i = lo; i <= top; i++) labels.push(i === 0 ? "< 2 µs" : (Math.pow(2, i) >= 1000 ? Math.pow(2, i) / 1000 + " ms" : Math.pow(2, i) + " µs"));
    var sets = hists.map(function (x, k) { return { type: "bar", label: x.label, data: x.h.slice(lo, top + 1), backgroundColor: color(k) }; });
    draw("faults", n, "no demand faults in this run", { type: "bar", data: { labels: labels, datasets: sets }, options: { scales: { x: axis("latency, from bucket [2^N, 2^(N+1)) µs"), y: axis("faults", { min: 0 }) } } });
  })();

  // 5. Each vCPU's utilization over time (a stall is a dip to 0).
  (function () {
    var sets = [], n = 0;
    runs.forEach(function (r, ri) {
      var v = r.vcpus;
      if (!v) return;
      var ts = v.t_ms.map(function (t) { return t / 1000; });
      n += ts.length;
      if (!multi) {
        v.per_vcpu.slice(0, 16).forEach(function (u, i) { sets.push(line("vCPU " + i, xy(ts, u.map(function (x) { return 100 * x; })), i)); });
      } else {
        var mean = ts.map(function (_, i) { var s = 0; v.per_vcpu.forEach(function (u) { s += u[i]; }); return (100 * s) / v.per_vcpu.length; });
        sets.push(line(r.label + " (mean of vCPUs)", xy(ts, mean), ri));
      }
    });
    draw("vcpus", n, "no fine-grained guest progress log for this run", { type: "line", data: { datasets: sets }, options: { scales: { x: axis("time since migration start (s)", { type: "linear" }), y: axis("utilization (% of unmigrated speed)", { min: 0, max: 100 }) } } });
  })();

  // 6. Minimum guest utilization (MMU) curve.
  (function () {
    var sets = [], n = 0;
    runs.forEach(function (r, ri) {
      var g = r.report.guest;
      if (!g) return;
      var pts = g.mmu.filter(function (m) { return m.min_utilization !== null; }).map(function (m) { return { x: m.window_ms, y: 100 * m.min_utilization }; });
      n += pts.length;
      sets.push(line(r.label, pts, ri, { pointRadius: 3 }));
    });
    draw("mmu", n, "no guest progress log for this run", { type: "line", data: { datasets: sets }, options: { scales: { x: axis("window (ms)", { type: "logarithmic" }), y: axis("minimum utilization (%)", { min: 0, max: 100 }) } } });
  })();
})();
`;
