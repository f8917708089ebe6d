// Charts drawn with uPlot (static/vendor/uplot): a job's series on its page, kept live (new points are
// asked for with after=<last> when the live stream says the job reported progress or a node refreshed its
// readings: live.js passes every event on as a "gpuq:event"), several jobs' curves on one chart (the
// compare page), and the analytics page's bars. Every chart has axes with units, a tooltip at the cursor
// and, for time, a choice of range (drag across a chart to zoom, double-click to zoom out).
(function () {
  "use strict";
  const COLORS = ["#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#4e342e"];

  function number(v) {
    if (v == null) return "–";
    const abs = Math.abs(v);
    return abs !== 0 && (abs < 0.001 || abs >= 1e6) ? v.toExponential(3) : String(Math.round(v * 1000) / 1000);
  }

  function sizeOf(el) {
    return { width: Math.max(240, el.clientWidth || 480), height: 220 };
  }

  // A box that follows the cursor with the x value and each shown series' value there.
  function tooltip(formatX, unit) {
    let tip;
    return {
      hooks: {
        init: function (u) {
          tip = document.createElement("div");
          tip.className = "chart-tip";
          tip.hidden = true;
          u.over.appendChild(tip);
        },
        setCursor: function (u) {
          const i = u.cursor.idx;
          if (i == null || u.cursor.left < 0) { tip.hidden = true; return; }
          const lines = [formatX(u.data[0][i])];
          u.series.forEach(function (s, k) {
            if (k && s.show && u.data[k][i] != null) lines.push(s.label + ": " + number(u.data[k][i]) + (unit ? " " + unit : ""));
          });
          tip.textContent = lines.join("\n");
          tip.hidden = false;
          tip.style.left = Math.min(u.cursor.left + 12, u.over.clientWidth - tip.offsetWidth) + "px";
          tip.style.top = u.cursor.top + 12 + "px";
        },
      },
    };
  }

  function timeLabel(t) { return new Date(t * 1000).toLocaleString(); }
  function elapsedLabel(t) { return "after " + number(t) + " s"; }

  // A line chart of `labels` over time (or over seconds elapsed when `elapsed`), y in `unit`.
  function lineChart(el, opts) {
    const formatX = opts.elapsed ? elapsedLabel : timeLabel;
    const plot = new uPlot({
      ...sizeOf(el),
      scales: { x: { time: !opts.elapsed }, y: opts.yRange ? { range: opts.yRange } : { auto: true } },
      axes: [
        { label: opts.elapsed ? "seconds since the job's first point" : "time", labelSize: 20 },
        { label: (opts.name || "value") + (opts.unit ? " (" + opts.unit + ")" : ""), labelSize: 20, size: 60 },
      ],
      series: [{ value: function (u, v) { return v == null ? "–" : formatX(v); } }].concat(opts.labels.map(function (label, i) {
        return { label: label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true, value: function (u, v) { return number(v); } };
      })),
      plugins: [tooltip(formatX, opts.unit)],
    }, [[]].concat(opts.labels.map(function () { return []; })), el);
    new ResizeObserver(function () { plot.setSize(sizeOf(el)); }).observe(el);
    return plot;
  }

  // Series (each a Map x -> y) on one shared, sorted x axis; gaps are null.
  function align(maps) {
    const xs = Array.from(new Set(maps.flatMap(function (m) { return Array.from(m.keys()); }))).sort(function (a, b) { return a - b; });
    return [xs].concat(maps.map(function (m) { return xs.map(function (x) { return m.has(x) ? m.get(x) : null; }); }));
  }

  function seconds(at) { return Date.parse(at) / 1000; }

  // ---- The job page: one chart per number the job reports, one for its GPUs' utilization, one for their memory.
  function jobCharts(root) {
    const url = root.dataset.metrics;
    const job = Number(root.dataset.job);
    const grid = root.querySelector(".chart-grid");
    const status = root.querySelector(".charts-status");
    const rangeSelect = root.querySelector("select[name=range]");
    const attemptSelect = root.querySelector("select[name=attempt]");
    let last = 0, attempt = null, following = true, busy = false, again = false, timer = null;
    let series = new Map();  // name -> {unit, points: Map(t -> v)}
    let charts = new Map();  // chart key -> {plot, figure, names}

    function chartKey(name) {
      const gpu = /^gpu\d+\.(.+)$/.exec(name);
      return gpu ? "gpu:" + gpu[1] : name;
    }

    function title(key, unit) {
      if (key === "gpu:utilization_percent") return "GPU utilization";
      if (key === "gpu:memory_used_mb") return "GPU memory used";
      return key + (unit ? " (" + unit + ")" : "");
    }

    function reset() {
      series = new Map();
      charts.forEach(function (c) { c.plot.destroy(); c.figure.remove(); });
      charts = new Map();
      last = 0;
    }

    function draw() {
      const groups = new Map();
      series.forEach(function (s, name) {
        const key = chartKey(name);
        if (!groups.has(key)) groups.set(key, { unit: s.unit, names: [] });
        groups.get(key).names.push(name);
      });
      groups.forEach(function (group, key) {
        let chart = charts.get(key);
        if (chart && chart.names.join() !== group.names.sort().join()) { chart.plot.destroy(); chart.figure.remove(); chart = null; }
        if (!chart) {
          const figure = document.createElement("figure");
          figure.className = "chart";
          figure.dataset.series = key;
          const caption = document.createElement("figcaption");
          caption.textContent = title(key, group.unit);
          const box = document.createElement("div");
          figure.append(caption, box);
          grid.appendChild(figure);
          const names = group.names.sort();
          const gpu = key.startsWith("gpu:");
          const plot = lineChart(box, {
            labels: gpu ? names.map(function (n) { return n.split(".")[0]; }) : names,
            name: gpu ? (key === "gpu:utilization_percent" ? "utilization" : "memory") : key,
            unit: group.unit,
            yRange: key === "gpu:utilization_percent" ? [0, 100] : null,
          });
          chart = { plot: plot, figure: figure, names: names };
          charts.set(key, chart);
        }
        const data = align(chart.names.map(function (n) { return series.get(n).points; }));
        chart.plot.setData(data);
        const span = Number(rangeSelect.value);
        const xs = data[0];
        if (span && xs.length) chart.plot.setScale("x", { min: xs[xs.length - 1] - span, max: xs[xs.length - 1] });
        chart.figure.dataset.points = String(xs.length);
      });
      status.textContent = series.size ? "" : "No points yet. A job's numbers come from the JSON object it writes to its GPUQ_PROGRESS_FILE; its GPUs' use, where the node reads them (NVML).";
    }

    function attempts(latest) {
      if (attemptSelect.options.length === latest + 1) return;
      attemptSelect.innerHTML = '<option value="">latest</option>';
      for (let n = latest; n >= 1; n--) attemptSelect.add(new Option("attempt " + n, String(n)));
    }

    async function load() {
      if (busy) { again = true; return; }
      busy = true;
      try {
        const query = new URLSearchParams({ after: String(last) });
        if (attempt !== null) query.set("attempt", String(attempt));
        const response = await fetch(url + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) { status.textContent = "The charts could not be loaded (HTTP " + response.status + ")."; return; }
        const body = await response.json();
        attempts(body.attempts);
        if (following && attempt !== null && body.attempts !== attempt) { reset(); attempt = body.attempts; again = true; return; }
        attempt = body.attempt;
        body.series.forEach(function (s) {
          if (!series.has(s.name)) series.set(s.name, { unit: s.unit, points: new Map() });
          const points = series.get(s.name).points;
          s.points.forEach(function (p) { points.set(seconds(p.at), p.value); });
        });
        last = body.last;
        draw();
      } catch (error) {
        status.textContent = "The charts could not be loaded (" + error.message + ").";
      } finally {
        busy = false;
        if (again) { again = false; load(); }
      }
    }

    function soon() { clearTimeout(timer); timer = setTimeout(load, 150); }

    rangeSelect.addEventListener("change", draw);
    attemptSelect.addEventListener("change", function () {
      following = attemptSelect.value === "";
      reset();
      attempt = following ? null : Number(attemptSelect.value);
      load();
    });
    const live = document.getElementById("live");
    if (live) {
      live.addEventListener("gpuq:event", function (e) {
        const event = e.detail;
        // A node's refresh brings GPU readings, only for a job that may still hold GPUs.
        const readings = event.kind === "node" && root.dataset.finished !== "1";
        if (event.kind === "reset" || readings || ((event.kind === "progress" || event.kind === "job") && event.job === job)) soon();
      });
    }
    load();
  }

  // ---- The compare page: the same series of several jobs on one chart, over the seconds since each began.
  function compareCharts(root) {
    const jobs = JSON.parse(document.getElementById("compare-jobs").textContent);
    const select = root.querySelector("select[name=series]");
    const box = root.querySelector(".chart-box");
    const status = root.querySelector(".charts-status");
    let plot = null;
    const answers = new Map();

    function draw() {
      const name = select.value;
      const maps = jobs.map(function (job) {
        const found = (answers.get(job.id) || []).find(function (s) { return s.name === name; });
        const points = new Map();
        if (found && found.points.length) {
          const start = seconds(found.points[0].at);
          found.points.forEach(function (p) { points.set(Math.round((seconds(p.at) - start) * 1000) / 1000, p.value); });
        }
        return points;
      });
      const unit = ((answers.get(jobs[0].id) || []).find(function (s) { return s.name === name; }) || {}).unit || "";
      if (plot) plot.destroy();
      box.innerHTML = "";
      plot = lineChart(box, { labels: jobs.map(function (j) { return "#" + j.id + " " + j.name; }), name: name, unit: unit, elapsed: true });
      const data = align(maps);
      plot.setData(data);
      box.dataset.series = name;
      box.dataset.points = String(data[0].length);
    }

    Promise.all(jobs.map(function (job) {
      return fetch(job.metrics, { credentials: "same-origin" }).then(function (r) { return r.ok ? r.json() : { series: [] }; })
        .then(function (body) { answers.set(job.id, body.series); });
    })).then(function () {
      const names = new Set();
      answers.forEach(function (list) { list.forEach(function (s) { names.add(s.name); }); });
      const wanted = select.dataset.wanted;
      Array.from(names).sort().forEach(function (n) { select.add(new Option(n, n, false, n === wanted)); });
      if (!names.size) { status.textContent = "These jobs have reported no numbers yet."; return; }
      if (!names.has(wanted)) select.value = names.has("loss") ? "loss" : select.options[0].value;
      draw();
    });
    select.addEventListener("change", draw);
  }

  // ---- The analytics page: bars with axes; charts of one unit share one scale (percentages 0-100).
  function barChart(el) {
    const spec = JSON.parse(el.querySelector("script").textContent);
    const xs = spec.labels.map(function (_, i) { return i; });
    const every = Math.max(1, Math.ceil(xs.length / 8));  // about eight labels however many bars
    const counts = spec.values.every(Number.isInteger);  // whole jobs: no ticks at 0.2 of a job
    const plot = new uPlot({
      ...sizeOf(el),
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: false, range: [-0.5, xs.length - 0.5] }, y: { range: [0, spec.max] } },
      axes: [
        { values: function (u, ticks) { return ticks.map(function (t) { return t % every === 0 && spec.labels[t] !== undefined ? spec.labels[t] : ""; }); }, splits: function () { return xs; }, gap: 4, size: 40 },
        Object.assign({ label: spec.unit, labelSize: 20, size: 60 }, counts ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] } : {}),
      ],
      series: [
        { value: function (u, v) { return v == null ? "–" : spec.labels[v]; } },
        { label: spec.title, fill: "#1565c0", stroke: "#1565c0", paths: uPlot.paths.bars({ size: [0.7, 80] }), points: { show: false }, value: function (u, v) { return number(v) + " " + spec.unit; } },
      ],
      plugins: [tooltip(function (x) { return spec.labels[x]; }, spec.unit)],
    }, [xs, spec.values], el);
    new ResizeObserver(function () { plot.setSize(sizeOf(el)); }).observe(el);
  }

  const job = document.getElementById("job-charts");
  if (job) jobCharts(job);
  const compare = document.getElementById("compare");
  if (compare) compareCharts(compare);
  document.querySelectorAll(".bar-chart").forEach(barChart);
})();
