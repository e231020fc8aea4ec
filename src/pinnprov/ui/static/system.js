// The run page's system chart, under the loss charts: the trainer's CPU, memory and GPU busy fractions (the
// capture's system metrics, pinnprov/capture/system_metrics.py) on the same epoch axis as the loss, so a slow
// epoch can be read against what the machine was doing. Polled every 5 s (the metrics' default interval); hidden
// while the run has no system metrics (an older trainer, system metrics off, or a store without them).
"use strict";

(() => {
  const POLL_MS = 5000;
  const container = document.getElementById("chart-system");
  const note = document.getElementById("system-note");
  let chart = null;
  let labels = "";
  let run = null;

  function show(data) {
    const names = data.series.map((s) => s.label);
    if (!names.length) return;
    if (chart === null || names.join("\n") !== labels) {  // uPlot's series are fixed: a new set, a new chart
      if (chart !== null) chart.destroy();
      container.replaceChildren();
      chart = Charts.make(container, { title: "System (% busy)", series: names.map((label) => ({ label })),
        syncKey: "run", height: 180, spanGaps: true });
      labels = names.join("\n");
    }
    container.hidden = false;
    note.hidden = false;
    chart.setData([data.x, ...data.series.map((s) => s.values)]);
    container.dataset.points = String(data.x.length);
    container.dataset.series = labels;
  }

  async function refresh() {
    if (run === null) {  // "latest" or a prefix is resolved once, like the rest of the page
      const detail = await PP.api(`/api/runs/${PP.enc(PP.subject)}`);
      run = detail.run.run_id;
    }
    show(await PP.api(`/api/runs/${PP.enc(run)}/system`));
    const status = document.getElementById("run-status").textContent;
    return !/completed|stopped|failed/.test(status);  // a finished run's samples are all there
  }

  if (container) PP.poll(refresh, POLL_MS);
})();
