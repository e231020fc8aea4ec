// The Runs page: every run with its latest epoch (Table 2's row) and R², filtered by experiment and status, live.
"use strict";

(() => {
  const COLUMNS = ["run_name", "status", "experiment", "optimizer", "activation", "epoch", "loss", "loss_bc",
    "loss_residual", "loss_data", "r2", "started_at"];
  const LABELS = { run_name: "run", epoch: "epochs", loss: "L", loss_bc: "L_BC", loss_residual: "L_R",
    loss_data: "L_D", r2: "R²", started_at: "started" };
  const experiment = document.getElementById("filter-experiment");
  const status = document.getElementById("filter-status");
  const params = new URLSearchParams(location.search);
  status.value = params.get("status") || "";

  function cell(column, value, row) {
    const run = row.run;
    if (column === "run_name") return PP.el("a", { href: `/runs/${PP.enc(run.run_name || run.run_id)}`, text: run.run_name || run.run_id });
    if (column === "status") return PP.statusBadge(value);
    if (column === "experiment" && value) return PP.el("a", { href: `/compare/${PP.enc(value)}`, text: value });
    return null;
  }

  function showExperiments(names) {
    const chosen = experiment.value || params.get("experiment") || "";
    experiment.replaceChildren(PP.el("option", { value: "", text: "all" }),
      ...names.map((name) => PP.el("option", { value: name, text: name })));
    experiment.value = names.includes(chosen) ? chosen : "";
  }

  async function refresh() {
    const query = new URLSearchParams();
    const chosenExperiment = experiment.value || params.get("experiment") || "";
    if (chosenExperiment) query.set("experiment", chosenExperiment);
    if (status.value) query.set("status", status.value);
    const data = await PP.api(`/api/runs?${query}`);
    showExperiments(data.experiments);
    const rows = data.runs.map((run) => Object.assign(COLUMNS.map((c) => run[c]), { run }));
    PP.renderTable(document.getElementById("runs-table"), COLUMNS, rows.reverse(), { labels: LABELS, cell,
      empty: "(no runs: start one with pinnprov train --store ...)" });
    document.getElementById("runs-count").textContent = `${data.runs.length} run${data.runs.length === 1 ? "" : "s"}`;
    return true;
  }

  for (const select of [experiment, status]) {
    select.addEventListener("change", () => {
      params.set("experiment", experiment.value);
      params.set("status", status.value);
      history.replaceState(null, "", `/?${params}`);
      refresh().catch(PP.showError);
    });
  }
  PP.poll(refresh, 2000);
})();
