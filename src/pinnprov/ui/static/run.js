// The run page: live curves (polling only the epochs after the last one seen), zoom with full-resolution epochs,
// adaptation markers, Table 1, alerts, hyperparameters, PROV download, and steering through the store.
"use strict";

(() => {
  const POLL_MS = 1000;  // with the store's sub-second freshness: an epoch shows within 2 s of its end
  const DETAIL_MS = 3000;
  const points = () => Math.min(4000, Math.max(400, Math.round(document.getElementById("charts").clientWidth * 2)));
  const state = { runId: null, detail: null, overview: null, zoom: null, lastSeen: null, status: null, marks: [] };
  const SERIES = ["loss", "loss_bc", "loss_residual", "loss_data", "learning_rate", "elapsed_s"];

  const marks = () => state.marks;
  const plugins = () => [Charts.markersPlugin(marks), Charts.zoomPlugin(zoomTo, resetZoom)];
  const charts = {
    loss: Charts.make(document.getElementById("chart-loss"), {
      title: "Total loss L", log: true, series: [{ label: "L" }], plugins: plugins(), syncKey: "run" }),
    components: Charts.make(document.getElementById("chart-components"), {
      title: "Loss components", log: true, plugins: plugins(), syncKey: "run",
      series: [{ label: "L_BC", stroke: "#2ca02c" }, { label: "L_R (residual)", stroke: "#ff7f0e" },
        { label: "L_D (data)", stroke: "#9467bd" }] }),
    lr: Charts.make(document.getElementById("chart-lr"), {
      title: "Learning rate", log: true, series: [{ label: "learning rate", stroke: "#8c564b" }], plugins: plugins(),
      syncKey: "run", height: 180 }),
    time: Charts.make(document.getElementById("chart-time"), {
      title: "Epoch time (s)", series: [{ label: "elapsed_s", stroke: "#17becf" }], plugins: plugins(),
      syncKey: "run", height: 180 }),
  };

  function emptyColumns() {
    const columns = { epoch: [] };
    for (const name of SERIES) columns[name] = [];
    return columns;
  }

  function draw() {
    const c = state.zoom ? state.zoom.columns : state.overview;
    if (!c) return;
    const x = c.epoch;
    charts.loss.setData([x, Charts.positive(c.loss)]);
    charts.components.setData([x, Charts.positive(c.loss_bc), Charts.positive(c.loss_residual),
      Charts.positive(c.loss_data)]);
    charts.lr.setData([x, Charts.positive(c.learning_rate)]);
    charts.time.setData([x, c.elapsed_s]);
    const chart = document.getElementById("charts");
    // ms from navigation start to the first drawn curves: what bench/ui.py reports as the render time
    if (x.length && !chart.dataset.renderedMs) {
      requestAnimationFrame(() => {
        if (!chart.dataset.renderedMs) chart.dataset.renderedMs = String(Math.round(performance.now()));
      });
    }
    chart.dataset.points = String(x.length);
    chart.dataset.lastEpoch = String(state.lastSeen ?? "");
    document.getElementById("sampling").textContent = state.zoom
      ? `epochs ${state.zoom.lo}–${state.zoom.hi}${state.zoom.exact ? ", every stored epoch" : ", min/max per bucket"}`
      : (state.overviewExact ? "every stored epoch" : "whole run as min/max per epoch bucket; zoom in for every epoch");
  }

  function base() {
    return `/api/runs/${PP.enc(state.runId)}`;
  }

  async function loadOverview() {
    const data = await PP.api(`${base()}/series?points=${points()}`);
    state.overview = data.columns;
    state.overviewExact = data.exact;
    state.lastSeen = data.last_epoch;
    state.status = data.status;
    draw();
  }

  async function zoomTo(lo, hi) {
    const data = await PP.api(`${base()}/series?from=${lo}&to=${hi}&points=${points()}`);
    state.zoom = { lo, hi, exact: data.exact, columns: data.columns };
    draw();
    for (const chart of Object.values(charts)) chart.setScale("x", { min: lo, max: hi });
  }

  function resetZoom() {
    state.zoom = null;
    loadOverview().catch(PP.showError);
  }

  async function pollEpochs() {
    if (state.lastSeen === null) {
      await loadOverview();
    } else {
      const data = await PP.api(`${base()}/series?after=${state.lastSeen}&points=${points()}`);
      state.status = data.status;
      if (data.columns.epoch.length) {
        for (const name of Object.keys(state.overview)) state.overview[name].push(...data.columns[name]);
        state.lastSeen = data.last_epoch;
        if (!data.exact) state.overviewExact = false;
        // raw deltas accumulate; past twice the budget the whole run is fetched again as buckets
        if (state.overview.epoch.length > 2 * points()) await loadOverview();
        else if (!state.zoom) draw();
      }
    }
    showHeader();
    const running = state.status === "running";
    if (!running) refreshDetail().catch(PP.showError);  // the run's end: final adaptations and status
    return running;
  }

  function showHeader() {
    document.getElementById("epoch-count").textContent = state.lastSeen === null ? "–" : String(state.lastSeen);
    const losses = state.overview ? state.overview.loss : [];
    document.getElementById("latest-loss").textContent = losses.length ? PP.format(losses[losses.length - 1]) : "–";
    document.getElementById("run-status").replaceChildren(PP.statusBadge(state.status));
    document.getElementById("steer").classList.toggle("ended", state.status !== null && state.status !== "running");
  }

  const RUN_FACTS = ["optimizer", "activation", "lr_schedule", "lr_initial", "planned_epochs", "host", "device"];

  async function refreshDetail() {
    return showDetail(await PP.api(base()));
  }

  function showDetail(detail) {
    state.detail = detail;
    const run = detail.run;
    state.status = run.status;
    document.getElementById("run-name").textContent = run.run_name || run.run_id;
    document.title = `pinnprov · ${run.run_name || run.run_id}`;
    const facts = RUN_FACTS.filter((k) => run[k] !== null && run[k] !== "").map((k) => `${k} ${PP.format(run[k])}`);
    if (detail.summary && detail.summary.r2 !== undefined) facts.push(`R² ${PP.format(detail.summary.r2)}`);
    document.getElementById("run-facts").textContent = facts.join(" · ");
    if (run.experiment) {
      const link = document.getElementById("compare-link");
      link.href = `/compare/${PP.enc(run.experiment)}`;
      link.textContent = `Compare ${run.experiment}`;
    }
    const a = detail.adaptations;
    const col = (name) => a.columns.indexOf(name);
    state.marks = a.rows.map((row) => ({ epoch: row[col("epoch")], agent: row[col("agent")] }));
    PP.renderTable(document.getElementById("adaptations-table"), a.columns, a.rows.slice().reverse(), {
      cell: (c, v) => (c === "agent" ? PP.el("span", { class: `key ${Charts.agentKind(v)}`, text: v }) : null) });
    PP.renderTable(document.getElementById("alerts-table"), detail.alerts.columns, detail.alerts.rows, {
      empty: "(no alert fired)" });
    PP.renderTable(document.getElementById("hyperparameters-table"), detail.hyperparameters.columns,
      detail.hyperparameters.rows);
    const commandColumns = ["created_at", "kind", "parameter", "value", "agent", "reason", "state", "detail"];
    PP.renderTable(document.getElementById("commands-table"), commandColumns,
      detail.commands.slice().reverse().map((c) => commandColumns.map((k) => c[k])), { empty: "(no commands)" });
    const runColumns = Object.keys(run);
    PP.renderTable(document.getElementById("run-table"), ["field", "value"], runColumns.map((k) => [k, run[k]]), {
      cell: (c, v, row) => (c === "value" ? PP.format(v, row[0]) : null) });
    showHeader();
    for (const chart of Object.values(charts)) chart.redraw(false);
    return state.status === "running";
  }

  async function loadTable1() {
    const every = document.getElementById("table1-every").value;
    const t = await PP.api(`${base()}/table1${every ? `?every=${PP.enc(every)}` : ""}`);
    document.getElementById("table1-every").value = t.every;
    const labels = { elapsed_s: "Time (s)", loss: "L", loss_bc: "L_BC", loss_residual: "L_R", loss_data: "L_D" };
    PP.renderTable(document.getElementById("table1"), t.columns, t.rows, { labels });
  }

  async function sendCommand(kind, value, parameter) {
    const message = document.getElementById("steer-message");
    const reason = document.getElementById("steer-reason").value.trim();
    if (!reason) {
      message.textContent = "Give a reason first: it is recorded with the adaptation.";
      message.className = "message error";
      return;
    }
    try {
      const answer = await PP.post(`${base()}/steer`, { kind, value, parameter, reason });
      message.textContent = `queued ${kind}${parameter ? ` ${parameter}` : ""}${kind === "stop" ? "" : ` ${value}`} ` +
        `as command ${answer.command_id.slice(0, 8)} (agent ${answer.agent}); the trainer applies it at its next epoch`;
      message.className = "message ok";
      await refreshDetail();
    } catch (error) {
      message.textContent = `refused: ${error.message}`;
      message.className = "message error";
    }
  }

  function number(id) {
    const text = document.getElementById(id).value;
    return text === "" ? NaN : Number(text);
  }

  function wireSteering(info) {
    document.getElementById("agent").textContent = info.agent;
    document.getElementById("steer-term").replaceChildren(...info.weight_parameters.map((p) => PP.el("option", { text: p })));
    document.getElementById("steer-set-lr").addEventListener("click", () => sendCommand("set_lr", number("steer-lr"), ""));
    document.getElementById("steer-scale-lr").addEventListener("click",
      () => sendCommand("scale_lr", number("steer-scale"), ""));
    document.getElementById("steer-set-weight").addEventListener("click", () => sendCommand("set_weight",
      number("steer-weight"), document.getElementById("steer-term").value));
    document.getElementById("steer-stop").addEventListener("click", () => sendCommand("stop", 0, ""));
  }

  async function start() {
    const [info, detail] = await Promise.all([PP.api("/api/info"), PP.api(`/api/runs/${PP.enc(PP.subject)}`)]);
    state.runId = detail.run.run_id;  // "latest" or a prefix is resolved once: the page stays on this run
    history.replaceState(null, "", `/runs/${PP.enc(detail.run.run_name || state.runId)}`);
    const curves = loadOverview();  // the curves first: they are what the page is opened for
    document.getElementById("prov-json").href = `${base()}/prov?format=json`;
    document.getElementById("prov-provn").href = `${base()}/prov?format=provn`;
    wireSteering(info);
    document.getElementById("table1-form").addEventListener("submit", (e) => { e.preventDefault(); loadTable1(); });
    document.getElementById("table1-every").addEventListener("change", () => loadTable1().catch(PP.showError));
    showDetail(detail);
    await Promise.all([curves, loadTable1()]);
    PP.poll(pollEpochs, POLL_MS);
    PP.poll(async () => { await refreshDetail(); return state.status === "running"; }, DETAIL_MS);
    PP.poll(async () => { await loadTable1(); return state.status === "running"; }, 10 * DETAIL_MS);
  }

  start().catch(PP.showError);
})();
