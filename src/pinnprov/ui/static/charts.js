// uPlot helpers: a chart per quantity sharing the cursor, log scales for losses, adaptation markers, zoom by drag.
"use strict";

const Charts = (() => {
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22"];
  const AGENT_COLOURS = { user: "#d62728", rule: "#ff7f0e", trainer: "#9467bd", schedule: "#b0b0b0" };

  function agentKind(agent) {
    const name = String(agent || "");
    if (name.startsWith("user:")) return "user";
    if (name.startsWith("rule:")) return "rule";
    if (name === "schedule") return "schedule";
    return "trainer";
  }

  // Vertical lines at adaptation epochs: getMarks() -> [{epoch, agent, parameter}], read at every redraw.
  function markersPlugin(getMarks) {
    return {
      hooks: {
        draw: [(u) => {
          const { ctx } = u;
          const { top, height } = u.bbox;
          ctx.save();
          for (const mark of getMarks()) {
            if (mark.epoch === null || mark.epoch === undefined) continue;
            const x = Math.round(u.valToPos(mark.epoch, "x", true));
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            const kind = agentKind(mark.agent);
            ctx.strokeStyle = AGENT_COLOURS[kind];
            ctx.lineWidth = (kind === "schedule" ? 1 : 2) * devicePixelRatio;
            ctx.setLineDash(kind === "schedule" ? [2 * devicePixelRatio, 4 * devicePixelRatio] : []);
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
          }
          ctx.restore();
        }],
      },
    };
  }

  // Zoom: a drag selects an epoch range and calls onZoom(lo, hi); a double-click calls onReset().
  function zoomPlugin(onZoom, onReset) {
    return {
      hooks: {
        ready: [(u) => { u.over.addEventListener("dblclick", () => onReset()); }],
        setSelect: [(u) => {
          if (u.select.width < 5) return;
          const lo = Math.floor(u.posToVal(u.select.left, "x"));
          const hi = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
          u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          onZoom(Math.max(0, lo), hi);
        }],
      },
    };
  }

  function width(container) {
    return Math.max(320, container.clientWidth || 800);
  }

  // series: [{label, stroke}], log: log10 y axis. Data is [x, y1, y2, ...] as uPlot takes it.
  function make(container, { title, series, log = false, plugins = [], height = 220, syncKey = null, spanGaps = false }) {
    const options = {
      title,
      width: width(container),
      height,
      plugins,
      cursor: Object.assign({ drag: { x: true, y: false, setScale: false } }, syncKey ? { sync: { key: syncKey } } : {}),
      scales: { x: { time: false }, y: log ? { distr: 3, log: 10 } : {} },
      axes: [{ label: "epoch" }, { size: 70, values: (u, ticks) => ticks.map((v) => PP.g6(v)) }],
      series: [{ label: "epoch", value: (u, v) => (v === null ? "–" : String(v)) }].concat(series.map((s, i) => ({
        label: s.label,
        stroke: s.stroke || PALETTE[i % PALETTE.length],
        width: 1.5,
        spanGaps,
        points: { show: false },
        value: (u, v) => (v === null || v === undefined ? "–" : PP.g6(v)),
      }))),
    };
    const empty = [[]].concat(series.map(() => []));
    const chart = new uPlot(options, empty, container);
    new ResizeObserver(() => chart.setSize({ width: width(container), height })).observe(container);
    return chart;
  }

  // Log axes cannot show 0 or negative values: those become gaps.
  function positive(values) {
    return values.map((v) => (v === null || v <= 0 ? null : v));
  }

  return { make, markersPlugin, zoomPlugin, positive, agentKind, PALETTE };
})();
