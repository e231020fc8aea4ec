// The Compare page: Figure 3 (total loss of every run of an experiment, log scale), Table 2 and Table 3, live.
"use strict";

(() => {
  const select = document.getElementById("experiment");
  let chart = null;
  let labels = "";

  // uPlot shares one x array: the union of every curve's epochs, each curve null where it has no point.
  function align(curves) {
    const epochs = Array.from(new Set(curves.flatMap((c) => c.epoch))).sort((a, b) => a - b);
    const index = new Map(epochs.map((e, i) => [e, i]));
    const ys = curves.map((c) => {
      const y = new Array(epochs.length).fill(null);
      c.epoch.forEach((e, i) => { y[index.get(e)] = c.loss[i] > 0 ? c.loss[i] : null; });
      return y;
    });
    return [epochs, ...ys];
  }

  function label(curve, all) {
    const same = all.filter((c) => c.label === curve.label).length > 1;
    const status = curve.status === "completed" ? "" : ` (${curve.status})`;
    return `${curve.label}${status}${same ? ` [${curve.run_name}]` : ""}`;
  }

  async function refresh() {
    const experiment = select.value;
    if (!experiment) return true;
    const points = Math.max(200, Math.round(document.getElementById("chart-compare").clientWidth));
    const data = await PP.api(`/api/compare/${PP.enc(experiment)}?points=${points}`);
    const names = data.curves.map((c) => label(c, data.curves));
    if (chart === null || names.join("|") !== labels) {
      if (chart !== null) chart.destroy();
      chart = Charts.make(document.getElementById("chart-compare"), {
        title: `Training loss, experiment ${experiment}`, log: true, height: 360, spanGaps: true,
        series: names.map((n) => ({ label: n })) });
      labels = names.join("|");
    }
    chart.setData(align(data.curves));
    document.getElementById("chart-compare").dataset.curves = String(data.curves.length);
    const t2 = { elapsed_s: "Time (s)", loss: "L", loss_bc: "L_BC", loss_residual: "L_R", loss_data: "L_D",
      optimizer: "Optimizer", activation: "Act Func" };
    const runLink = (c, v) => (c === "run_name" && v ? PP.el("a", { href: `/runs/${PP.enc(v)}`, text: v }) : null);
    PP.renderTable(document.getElementById("table2"), data.table2.columns, data.table2.rows, { labels: t2, cell: runLink });
    const t3 = { lr_schedule: "Function", lr_decay_rate: "Decay Rate", lr_decay_steps: "Decay Steps",
      lr_initial: "Initial LRate", lr_lowest: "Lowest LRate" };
    PP.renderTable(document.getElementById("table3"), data.table3.columns, data.table3.rows, { labels: t3, cell: runLink });
    return true;
  }

  async function start() {
    const data = await PP.api("/api/runs");
    const names = data.experiments;
    select.replaceChildren(...names.map((n) => PP.el("option", { value: n, text: n })));
    if (!names.length) {
      PP.showError(new Error("no experiment in this store yet (runs get one with --experiment or pinnprov sweep)"));
      return;
    }
    select.value = names.includes(PP.subject) ? PP.subject : names[names.length - 1];
    select.addEventListener("change", () => {
      history.replaceState(null, "", `/compare/${PP.enc(select.value)}`);
      if (chart !== null) { chart.destroy(); chart = null; }
      refresh().catch(PP.showError);
    });
    PP.poll(refresh, 5000);
  }

  start().catch(PP.showError);
})();
