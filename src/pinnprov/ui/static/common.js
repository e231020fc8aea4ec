// Shared by every page: the token-carrying fetch, number and time formatting as the CLI prints them, tables,
// and a poller that never overlaps itself and pauses while the tab is hidden (an unseen page costs nothing).
"use strict";

const PP = (() => {
  const token = document.querySelector('meta[name="pinnprov-token"]').content;

  async function api(path, options = {}) {
    const headers = Object.assign({ "X-PinnProv-Token": token }, options.headers || {});
    const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const error = new Error((body && body.error) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function post(path, data) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
  }

  const isTime = (column) => column === "at" || column.endsWith("_at");

  // Python's "%.6g": the CLI's table format, so numbers read the same in both.
  function g6(value) {
    if (value === null || value === undefined || !Number.isFinite(value)) return "";
    if (value === 0) return "0";
    const exponent = Math.floor(Math.log10(Math.abs(value)));
    if (exponent < -4 || exponent >= 6) {
      const [mantissa, exp] = value.toExponential(5).split("e");
      const sign = exp[0] === "-" ? "-" : "+";
      const digits = exp.replace(/^[-+]/, "").padStart(2, "0");
      return `${mantissa.replace(/\.?0+$/, "")}e${sign}${digits}`;
    }
    return String(Number(value.toPrecision(6)));
  }

  function iso(seconds) {
    return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
  }

  function format(value, column = "") {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") {
      if (column && isTime(column)) return iso(value);
      return Number.isInteger(value) ? String(value) : g6(value);
    }
    return String(value);
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === null || value === undefined) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  // columns: names; rows: arrays; cell(column, value, row) may return a Node to show instead of the text.
  function renderTable(table, columns, rows, { labels = {}, cell = null, empty = "(none yet)" } = {}) {
    const head = el("tr", {}, ...columns.map((c) => el("th", { text: labels[c] || c })));
    const body = rows.map((row) => el("tr", {}, ...columns.map((c, i) => {
      const custom = cell ? cell(c, row[i], row) : null;
      const numeric = typeof row[i] === "number" && !isTime(c);
      return el("td", { class: numeric ? "num" : null }, custom || format(row[i], c));
    })));
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));
    if (!rows.length) table.tBodies[0].append(el("tr", {}, el("td", { colspan: String(columns.length), class: "muted", text: empty })));
  }

  function statusBadge(status) {
    return el("span", { class: `status ${status || "running"}`, text: status || "running" });
  }

  function showError(error) {
    const box = document.getElementById("error");
    if (!box) return;
    box.hidden = !error;
    box.textContent = error ? String(error.message || error) : "";
  }

  // Runs fn every intervalMs after the previous call finished; stops when fn returns false.
  function poll(fn, intervalMs) {
    let timer = null;
    const live = document.getElementById("live");
    async function tick() {
      timer = null;
      if (document.hidden) return;  // resumed by visibilitychange
      let again = true;
      try { again = (await fn()) !== false; showError(null); } catch (error) { showError(error); }
      if (live) live.classList.toggle("off", !again);
      if (again) timer = setTimeout(tick, intervalMs);
    }
    document.addEventListener("visibilitychange", () => { if (!document.hidden && timer === null) tick(); });
    tick();
  }

  const subject = document.body.dataset.subject || "";
  const enc = encodeURIComponent;
  return { api, post, format, g6, iso, el, renderTable, statusBadge, showError, poll, subject, enc };
})();
