// Velocity models on the scoring grid: the run page's live model with an epoch slider beside the PyGIMLi and exact
// models (when the run has them), and the compare page's final models side by side. Snapshots arrive as base64
// float32 (as they travelled in the telemetry) and are drawn cell by cell on a canvas, depth downwards.
// An ensemble's run shows its mean on the velocity scale and its spread (std, p95 - p05) apart, on a colour map
// and scale of its own with a colour bar: a spread is not a velocity (magma, as Figure 2's std panel).
"use strict";

(() => {
  // viridis at 9 stops: perceptually uniform, readable in grey
  const STOPS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
    [92, 200, 99], [170, 220, 50], [253, 231, 37]];
  // magma at 9 stops (matplotlib's, for the spread)
  const SPREAD_STOPS = [[0, 0, 4], [29, 17, 71], [81, 18, 124], [131, 38, 129], [183, 55, 121], [231, 82, 99],
    [252, 137, 97], [254, 196, 136], [252, 253, 191]];

  function decode(model) {
    const bytes = Uint8Array.from(atob(model.grid_f32), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }

  function colour(t, stops = STOPS) {
    const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(x));
    const f = x - i;
    return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
  }

  function range(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const list of values) for (const v of list) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
  }

  // A cell without a finite value (a member diverged there) stays transparent.
  function figure(model, values, [lo, hi], caption, stops = STOPS, ...below) {
    const canvas = PP.el("canvas", {});
    canvas.width = model.nx;
    canvas.height = model.nz;
    canvas.dataset.kind = model.kind;
    canvas.dataset.epoch = String(model.epoch);
    const context = canvas.getContext("2d");
    const image = context.createImageData(model.nx, model.nz);
    values.forEach((v, i) => {
      if (!Number.isFinite(v)) return;
      const [r, g, b] = colour((v - lo) / (hi - lo), stops);
      image.data.set([r, g, b, 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
    canvas.style.height = `${Math.round(220 * model.nz / model.nx)}px`;
    return PP.el("figure", { class: "model" }, canvas, ...below, PP.el("figcaption", { text: caption }));
  }

  // A horizontal colour bar under a spread panel: its map from lo (left) to hi (right), both in m/s.
  function colourBar([lo, hi], stops, kind) {
    const bar = PP.el("canvas", { class: "colour-bar" });
    bar.width = 110;
    bar.height = 1;
    bar.dataset.scale = kind;
    const context = bar.getContext("2d");
    const image = context.createImageData(bar.width, 1);
    for (let i = 0; i < bar.width; i += 1) image.data.set([...colour(i / (bar.width - 1), stops), 255], 4 * i);
    context.putImageData(image, 0, 0);
    return PP.el("div", { class: "colour-scale" }, PP.el("span", { text: PP.g6(lo) }), bar,
      PP.el("span", { text: `${PP.g6(hi)} m/s` }));
  }

  // The spread panels of an ensemble: std and the 90 % interval's width p95 - p05, each from 0 (the members agree)
  // to its largest value, as Figure 2's std panel.
  function drawSpread(container, ensemble) {
    const panels = [];
    if (ensemble.std) panels.push([ensemble.std, decode(ensemble.std), "ensemble std"]);
    if (ensemble.p05 && ensemble.p95) {
      const low = decode(ensemble.p05);
      const width = decode(ensemble.p95).map((v, i) => v - low[i]);
      panels.push([Object.assign({}, ensemble.p95, { kind: "p95-p05" }), width, "90 % interval width p95 − p05"]);
    }
    container.replaceChildren(...panels.map(([model, values, caption]) => {
      const hi = range([values])[1];
      const bounds = [0, hi > 0 && Number.isFinite(hi) ? hi : 1];
      return figure(model, values, bounds, caption, SPREAD_STOPS, colourBar(bounds, SPREAD_STOPS, model.kind));
    }));
    return panels.length;
  }

  function draw(container, models, scale) {
    const values = models.map(([model]) => decode(model));
    const bounds = scale ? range([decode(scale)]) : range(values);
    container.replaceChildren(...models.map(([model, caption], i) => figure(model, values[i], bounds, caption)));
    return bounds;
  }

  // --- the run page --------------------------------------------------------------------------------------
  function runPage() {
    const section = document.getElementById("models");
    const slider = document.getElementById("model-epoch");
    let follow = true;
    let shown = null;  // the snapshots drawn (their ids), so an unchanged answer is not redrawn

    async function refresh() {
      const epochs = (await PP.api(`/api/runs/${PP.enc(PP.subject)}/models?epoch=-1`)).epochs;
      if (!epochs.length) return true;
      section.hidden = false;
      slider.max = String(epochs.length - 1);
      slider.dataset.epochs = epochs.join(",");
      if (follow) slider.value = slider.max;
      const epoch = epochs[Number(slider.value)];
      const data = await PP.api(`/api/runs/${PP.enc(PP.subject)}/models?epoch=${epoch}`);
      const ensemble = data.ensemble || null;  // only an ensemble's run has it
      const ensembleModels = ensemble ? Object.values(ensemble) : [];
      const key = [data.pinn, data.pygimli, data.exact, ...ensembleModels]
        .map((m) => (m ? m.snapshot_id : "")).join("|");
      if (key === shown) return true;  // nothing new: keep the canvases (no flicker, no redraw)
      const panels = [];
      if (data.exact) panels.push([data.exact, "exact model"]);
      if (data.pygimli) panels.push([data.pygimli, "PyGIMLi"]);
      if (data.pinn) panels.push([data.pinn, `PINN, epoch ${data.pinn.epoch}`]);
      if (ensemble && ensemble.mean) panels.push([ensemble.mean, "ensemble mean"]);
      const [lo, hi] = draw(document.getElementById("model-panels"), panels, data.exact);
      if (ensemble) {
        const spread = document.getElementById("model-spread");
        spread.dataset.panels = String(drawSpread(document.getElementById("model-spread-panels"), ensemble));
        spread.hidden = false;
        section.dataset.ensemble = "1";
        document.getElementById("model-title").hidden = true;
        document.getElementById("model-ensemble-title").hidden = false;
        document.getElementById("model-slider").hidden = epochs.length < 2;
      }
      document.getElementById("model-range").textContent = `${Math.round(lo)}–${Math.round(hi)}`;
      document.getElementById("model-epoch-label").textContent = String(epoch);
      document.getElementById("model-follow").hidden = !follow;
      section.dataset.epoch = String(epoch);
      shown = key;
      return true;
    }

    slider.addEventListener("input", () => {
      follow = slider.value === slider.max;
      refresh().catch(PP.showError);
    });
    PP.poll(refresh, 2000);
  }

  // --- the compare page ----------------------------------------------------------------------------------
  function comparePage() {
    const select = document.getElementById("experiment");
    const section = document.getElementById("compare-models");

    async function refresh() {
      if (!select.value) return true;
      const data = await PP.api(`/api/compare/${PP.enc(select.value)}/models`);
      section.hidden = !data.models.length;
      const panels = data.exact ? [[data.exact, "exact model"]] : [];
      for (const m of data.models) panels.push([m, `${m.run_name} (epoch ${m.epoch}, ${m.status})`]);
      draw(document.getElementById("compare-model-panels"), panels, data.exact);
      section.dataset.models = String(data.models.length);
      return true;
    }

    select.addEventListener("change", () => refresh().catch(PP.showError));
    PP.poll(refresh, 5000);
  }

  if (document.body.dataset.page === "run") runPage();
  else if (document.body.dataset.page === "compare") comparePage();
})();
