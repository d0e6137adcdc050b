// labelseed's page script: keyboard labeling, audits, picks and background runs.
// Items are rendered with textContent only (never innerHTML); every POST carries the CSRF token.
const csrf = document.querySelector('meta[name="csrf-token"]').content;

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

function say(text) {
  const m = document.getElementById("message");
  if (m) m.textContent = text;
}

// ---------------------------------------------------------------- home: picks
for (const b of document.querySelectorAll("button[data-pick]")) {
  b.addEventListener("click", async () => {
    try {
      const r = await post("/api/pick", {kind: b.dataset.pick, budget: Number(b.dataset.budget)});
      say(`${r.rows} items picked (${r.batch}).`);
    } catch (e) { say(e.message); }
  });
}

// ---------------------------------------------------------------- run
const progress = document.getElementById("progress");
async function poll() {
  const r = await fetch("/api/job", {credentials: "same-origin"});
  const j = await r.json();
  document.getElementById("job").textContent = `${j.state}${j.stage ? ": " + j.stage : ""} ${j.message}`;
  if (j.total) { progress.max = j.total; progress.value = j.done; }
  if (j.state === "running") setTimeout(poll, 400);
  else if (j.state === "done") { progress.max = 1; progress.value = 1; }
}
// each button starts one background job: (button id, endpoint, the JSON it posts)
const jobs = [
  ["fit", "/api/fit", b => ({certify: b.dataset.certify})],
  ["fit-audit", "/api/fit", b => ({certify: b.dataset.certify})],
  ["report", "/api/report", () => ({})],
  ["embed", "/api/embed", b => ({model: b.dataset.model})],
  ["embed-hashing", "/api/embed", b => ({model: b.dataset.model})],
];
for (const [id, url, body] of jobs) {
  const b = document.getElementById(id);
  if (!b) continue;
  b.addEventListener("click", async () => {
    try { await post(url, body(b)); poll(); }
    catch (e) { document.getElementById("job").textContent = e.message; }
  });
}
if (progress) poll();

// ---------------------------------------------------------------- label / audit / similar
const box = document.getElementById("items");
if (box) {
  const data = JSON.parse(document.getElementById("items-data").textContent);
  const items = data.items;
  const classes = data.classes.slice();
  const done = [];  // rows labeled here, newest last (Backspace undoes them)
  let at = 0;
  const filter = document.getElementById("filter");
  const newClass = document.getElementById("new-class");
  const list = document.getElementById("classes");

  function visible() {
    const f = filter.value.trim().toLowerCase();
    return classes.filter(c => !f || c.toLowerCase().includes(f));
  }

  function render() {
    list.replaceChildren();
    visible().forEach((c, k) => {
      const li = document.createElement("li");
      li.textContent = k < 9 ? `${k + 1}  ${c}` : c;
      li.dataset.label = c;
      const item = items[at];
      if (item && item.label === c) li.className = "chosen";
      li.addEventListener("click", () => choose(c));
      list.appendChild(li);
    });
    const pos = document.getElementById("position");
    const text = document.getElementById("item-text");
    const img = document.getElementById("item-image");
    if (!items.length) {
      pos.textContent = data.view === "audit" ? "No audit drawn yet: draw one from Home." :
        "Nothing to label: pick items from Home (select or query).";
      return;
    }
    if (at >= items.length) {
      pos.textContent = `All ${items.length} items of this page are done.`;
      text.textContent = ""; img.hidden = true;
      return;
    }
    const item = items[at];
    const labeled = items.filter(i => i.label).length;
    pos.textContent = `Item ${at + 1} of ${items.length} (${labeled} labeled)`;
    document.getElementById("item-id").textContent = `id ${item.id}`;
    text.textContent = item.text || "";
    if (item.image) { img.src = item.image; img.hidden = false; } else { img.hidden = true; }
    document.getElementById("item-label").textContent = item.label ? `label: ${item.label}` : "unlabeled";
    document.getElementById("item-suggested").textContent =
      item.suggested ? `the run's label: ${item.suggested} (Enter or y if right)` : "";
    const link = document.getElementById("similar-link");
    link.replaceChildren();
    const a = document.createElement("a");
    a.href = `/similar?row=${encodeURIComponent(item.row)}`;
    a.textContent = "find similar items";
    link.appendChild(a);
  }

  // the grid: every item of the page at once; a class key labels every selected item
  const grid = document.getElementById("grid");
  const selected = new Set();
  let gridOn = false, cursor = 0;
  function renderGrid() {
    grid.replaceChildren();
    items.forEach((item, k) => {
      const card = document.createElement("div");
      card.className = "card" + (selected.has(k) ? " selected" : "") + (k === cursor ? " focus" : "");
      card.dataset.row = item.row;
      if (item.image) { const img = document.createElement("img"); img.src = item.image; img.alt = ""; card.appendChild(img); }
      const text = document.createElement("div");
      text.textContent = item.text || item.id;
      card.appendChild(text);
      const lab = document.createElement("div");
      lab.className = "lab";
      lab.textContent = item.label ? `label: ${item.label}` : (item.suggested ? `run: ${item.suggested}` : "unlabeled");
      card.appendChild(lab);
      card.addEventListener("click", () => { cursor = k; toggle(k); });
      grid.appendChild(card);
    });
  }
  function toggle(k) { if (selected.has(k)) selected.delete(k); else selected.add(k); renderGrid(); }
  function setGrid(on) {
    gridOn = on;
    grid.hidden = !on;
    document.getElementById("item").hidden = on;
    if (on) renderGrid();
  }
  document.getElementById("grid-toggle").addEventListener("click", () => setGrid(!gridOn));
  async function chooseMany(label) {
    const ks = [...selected];
    if (!ks.length) { say("select items first (click or Space)"); return; }
    try {
      await post("/api/label", {rows: ks.map(k => items[k].row), label});
      ks.forEach(k => { items[k].label = label; done.push(k); });
      if (!classes.includes(label)) classes.push(label);
      selected.clear();
      say(`labeled ${ks.length} items as ${label}`);
      render(); renderGrid();
    } catch (e) { say(e.message); }
  }

  async function choose(label) {
    if (gridOn) return chooseMany(label);
    const item = items[at];
    if (!item) return;
    try {
      await post("/api/label", {row: item.row, label});
      item.label = label;
      done.push(at);
      if (!classes.includes(label)) classes.push(label);
      say(`${item.id}: ${label}`);
      document.dispatchEvent(new Event("labelseed:labeled"));
      at += 1;
      render();
    } catch (e) { say(e.message); }
  }

  async function undo() {
    if (!done.length) return;
    const k = done.pop();
    try {
      await post("/api/unlabel", {row: items[k].row});
      items[k].label = null;
      at = k;
      say(`undone: ${items[k].id}`);
      render();
      if (gridOn) renderGrid();
    } catch (e) { say(e.message); }
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.target.matches("input, select, textarea") && ev.target !== newClass && ev.target !== filter) return;
    if (ev.target === newClass) {
      if (ev.key === "Enter" && newClass.value.trim()) { choose(newClass.value.trim()); newClass.value = ""; newClass.blur(); }
      return;
    }
    if (ev.target === filter) {
      if (ev.key === "Enter" || ev.key === "Escape") { filter.blur(); ev.preventDefault(); }
      setTimeout(render, 0);
      return;
    }
    if (ev.key === "g") { setGrid(!gridOn); return; }
    if (gridOn && (ev.key === "ArrowRight" || ev.key === "ArrowLeft")) {
      cursor = Math.max(0, Math.min(items.length - 1, cursor + (ev.key === "ArrowRight" ? 1 : -1)));
      renderGrid(); ev.preventDefault(); return;
    }
    if (gridOn && ev.key === " ") { toggle(cursor); ev.preventDefault(); return; }
    if (ev.key >= "1" && ev.key <= "9") {
      const c = visible()[Number(ev.key) - 1];
      if (c !== undefined) choose(c);
    } else if (ev.key === "/") { filter.focus(); ev.preventDefault(); }
    else if (ev.key === "n") { newClass.focus(); ev.preventDefault(); }
    else if (ev.key === "x") { at = Math.min(at + 1, items.length); render(); }
    else if (ev.key === "Backspace") { ev.preventDefault(); undo(); }
    else if (ev.key === "Enter" || ev.key === "y") {
      const item = items[at];
      if (item && item.suggested && data.view === "audit") choose(item.suggested);
      else { at = Math.min(at + 1, items.length); render(); }
    }
  });
  const all = document.getElementById("label-all");
  if (all) {
    all.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const label = document.getElementById("label-all-class").value.trim();
      if (!label) return;
      try {
        const r = await post("/api/label", {rows: items.map(i => i.row), label});
        items.forEach(i => { i.label = label; });
        if (!classes.includes(label)) classes.push(label);
        say(`labeled all ${items.length} items as ${label} (${r.labeled} labeled in the project)`);
        render();
      } catch (e) { say(e.message); }
    });
  }
  if (data.view === "audit") {  // the running realized precision, refreshed after each decision
    const table = document.querySelector("#audit-table tbody");
    const refresh = async () => {
      const r = await fetch("/api/audit", {credentials: "same-origin"});
      const a = (await r.json()).audit;
      if (!a) return;
      table.replaceChildren();
      for (const [name, c] of Object.entries(a.per_class)) {
        const tr = document.createElement("tr");
        for (const v of [name, c.verified, c.right,
                         `${c.precision.toFixed(3)} [${c.interval_95[0].toFixed(3)}, ${c.interval_95[1].toFixed(3)}]`,
                         (data.expected || {})[name] ?? ""]) {
          const td = document.createElement("td");
          td.textContent = String(v);
          tr.appendChild(td);
        }
        table.appendChild(tr);
      }
      const total = document.getElementById("audit-live");
      total.textContent = `Realized precision ${a.realized_precision.toFixed(3)} [${a.interval_95[0].toFixed(3)}, ` +
        `${a.interval_95[1].toFixed(3)}] from ${a.n_verified} verified auto-labels.`;
    };
    document.addEventListener("labelseed:labeled", refresh);
  }
  render();
}

// ---------------------------------------------------------------- review: bulk accept, undo, redo
const bulk = document.getElementById("bulk");
if (bulk) {
  const cls = bulk.dataset.class;
  const info = document.getElementById("bulk-info");
  const t = document.getElementById("bulk-t");
  const [bPreview, bAccept, bUndo, bRedo] = ["bulk-preview", "bulk-accept", "bulk-undo", "bulk-redo"]
    .map(id => document.getElementById(id));
  let lastBatch = null, lastT = null;
  const fmt = v => (v === null || v === undefined) ? "-" : Number(v).toFixed(3);

  async function preview() {
    const q = new URLSearchParams({cls, t: t.value});
    const r = await fetch(`/api/review/preview?${q}`, {credentials: "same-origin"});
    const p = await r.json();
    if (!r.ok) { info.textContent = p.error; bAccept.disabled = true; return; }
    info.textContent = `${p.n_rows} rows would be accepted as ${p.label} (all of them, not this page); ` +
      `the run's calibrated precision there ${fmt(p.expected_precision)}; out of fold ${p.oof_right} of ` +
      `${p.oof_n} right [${fmt(p.interval_95[0])}, ${fmt(p.interval_95[1])}] (95%, exact).`;
    bAccept.disabled = p.n_rows === 0;
  }
  async function accept(threshold) {
    try {
      const r = await post("/api/review/accept", {cls, t: Number(threshold)});
      lastBatch = r.batch; lastT = threshold;
      info.textContent = `accepted ${r.n_rows} rows as ${cls} (${r.batch}).`;
      bAccept.disabled = true; bUndo.disabled = false; bRedo.disabled = true;
    } catch (e) { info.textContent = e.message; }
  }
  bPreview.addEventListener("click", preview);
  t.addEventListener("change", preview);
  bAccept.addEventListener("click", () => accept(t.value));
  bUndo.addEventListener("click", async () => {
    try {
      const r = await post("/api/review/undo", {batch: lastBatch});
      info.textContent = `undone: ${r.n_rows} rows are unlabeled again.`;
      bUndo.disabled = true; bRedo.disabled = false;
    } catch (e) { info.textContent = e.message; }
  });
  bRedo.addEventListener("click", () => accept(lastT));
  for (const sel of document.querySelectorAll("select.relabel")) {
    sel.addEventListener("change", async () => {
      if (!sel.value) return;
      try {  // a rejection is a person's label of the right class
        await post("/api/label", {row: Number(sel.dataset.row), label: sel.value});
        sel.closest("tr").children[4].textContent = sel.value;
        say(`relabeled one row as ${sel.value}`);
      } catch (e) { say(e.message); }
    });
  }
  for (const b of document.querySelectorAll("button.accept-one")) {
    b.addEventListener("click", async () => {
      try {
        await post("/api/review/accept", {cls, rows: [Number(b.dataset.row)]});
        b.closest("tr").children[4].textContent = cls;
        say(`accepted one row as ${cls}`);
      } catch (e) { say(e.message); }
    });
  }
}

// ---------------------------------------------------------------- thresholds: slider, live estimate, save
const slider = document.getElementById("slider");
if (slider) {
  const td = JSON.parse(document.getElementById("thresholds-data").textContent);
  const out = document.getElementById("slider-value");
  const info = document.getElementById("slider-info");
  const fmt = v => (v === null || v === undefined) ? "-" : Number(v).toFixed(3);
  let base = null, pending = null;
  async function count(t) {
    const q = new URLSearchParams({cls: td.label, t});
    const r = await fetch(`/api/review/preview?${q}`, {credentials: "same-origin"});
    return r.json();
  }
  async function update() {
    const t = td.thresholds[Number(slider.value)];
    out.textContent = fmt(t);
    if (base === null && td.current !== null) base = (await count(td.current)).n_rows;
    const p = await count(t);
    const delta = base === null ? "" : `, ${p.n_rows - base >= 0 ? "+" : ""}${p.n_rows - base} rows against the fitted threshold`;
    info.textContent = `at ${fmt(t)}: expected precision ${fmt(p.expected_precision)}, coverage ` +
      `${fmt(p.expected_coverage)} of the unlabeled pool; out of fold ${p.oof_right} of ` +
      `${p.oof_n} right [${fmt(p.interval_95[0])}, ${fmt(p.interval_95[1])}] (95%, exact); ${p.n_rows} unlabeled rows` + delta;
  }
  slider.addEventListener("input", () => { clearTimeout(pending); pending = setTimeout(update, 80); });
  document.getElementById("save-threshold").addEventListener("click", async () => {
    try {
      const r = await post("/api/thresholds", {cls: td.label, t: td.thresholds[Number(slider.value)]});
      say(`saved: ${td.label} at ${fmt(r.threshold)} accepts ${r.n_accepted} rows; apply again to write them.`);
    } catch (e) { say(e.message); }
  });
  update();
}
