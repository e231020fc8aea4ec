// Velocity models on the scoring grid: the run page's live model with an epoch slider beside the PyGIMLi and exact
// models (when the run has them), and the compare page's final models side by side. Snapshots arrive as base64
// float32 (as they travelled in the telemetry) and are drawn cell by cell on a canvas, depth downwards.
"use strict";

(() => {
  // viridis at 9 stops: perceptually uniform, readable in grey
  const STOPS = [[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
    [92, 200, 99], [170, 220, 50], [253, 231, 37]];

  function decode(model) {
    const bytes = Uint8Array.from(atob(model.grid_f32), (c) => c.charCodeAt(0));
    return new Float32Array(bytes.buffer);
  }

  function colour(t) {
    const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
    const i = Math.min(STOPS.length - 2, Math.floor(x));
    const f = x - i;
    return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
  }

  function range(values) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const list of values) for (const v of list) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return hi > lo ? [lo, hi] : [lo - 1, hi + 1];
  }

  function figure(model, values, [lo, hi], caption) {
    const canvas = PP.el("canvas", {});
    canvas.width = model.nx;
    canvas.height = model.nz;
    canvas.dataset.kind = model.kind;
    canvas.dataset.epoch = String(model.epoch);
    const context = canvas.getContext("2d");
    const image = context.createImageData(model.nx, model.nz);
    values.forEach((v, i) => {
      const [r, g, b] = colour((v - lo) / (hi - lo));
      image.data.set([r, g, b, 255], 4 * i);
    });
    context.putImageData(image, 0, 0);
    canvas.style.height = `${Math.round(220 * model.nz / model.nx)}px`;
    return PP.el("figure", { class: "model" }, canvas, PP.el("figcaption", { text: caption }));
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
      const key = [data.pinn, data.pygimli, data.exact].map((m) => (m ? m.snapshot_id : "")).join("|");
      if (key === shown) return true;  // nothing new: keep the canvases (no flicker, no redraw)
      const panels = [];
      if (data.exact) panels.push([data.exact, "exact model"]);
      if (data.pygimli) panels.push([data.pygimli, "PyGIMLi"]);
      if (data.pinn) panels.push([data.pinn, `PINN, epoch ${data.pinn.epoch}`]);
      const [lo, hi] = draw(document.getElementById("model-panels"), panels, data.exact);
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
