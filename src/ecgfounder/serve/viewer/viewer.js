// ECGFounder viewer: upload files to /v1/predict (several recordings: /v1/predict/batch, listed), draw the
// 12-lead printout (25 mm/s, 10 mm/mV) with attribution shading, list findings and quality flags, download the report.
// No external resource: everything is in this file, viewer.css and index.html.
"use strict";

const PX = 4;            // canvas pixels per millimetre
const SPEED = 25;        // mm/s
const GAIN = 10;         // mm/mV
const MARGIN = 8, CAL_W = 10;
const COLUMNS = [["I", "II", "III"], ["aVR", "aVL", "aVF"], ["V1", "V2", "V3"], ["V4", "V5", "V6"]];
const STANDARD = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"];
const $ = (id) => document.getElementById(id);
let last = null;         // the answer shown
let lastBatch = null;    // the batch answer listed, if any
let lastFiles = [];      // the files it was asked for
let chosen = -1;         // the item of the batch shown
const explained = new WeakSet();  // items whose answer has their attribution
let pages = null;        // the recording shown, page by page: {req, answers: {start: answer}, wanted: start}

function authHeaders() {
  const t = $("token").value.trim();
  sessionStorage.setItem("ecgfounder-token", t);
  return t ? { Authorization: "Bearer " + t } : {};
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

async function loadModel() {
  try {
    const r = await fetch("/v1/model", { headers: authHeaders() });
    if (!r.ok) { $("model").textContent = r.status === 401 ? "model: token needed" : "model: unavailable"; return; }
    const m = await r.json();
    $("model").textContent = "model: " + m.id + (m.weights_sha256 ? " · sha256 " + m.weights_sha256.slice(0, 12) : "");
    const one = m.contract.leads.length === 1;  // a one-lead model: another lead of the recording may be fed to it
    $("lead-row").hidden = !one;
    if (one) $("model-lead").textContent = m.contract.leads[0];
  } catch (e) { $("model").textContent = "model: unavailable"; }
}

// Files that may hold several recordings go to /v1/predict/batch, and so do several recordings at
// once (a WFDB record's .hea/.dat/.mat count as one): the answer lists each, one failure its own item.
const BATCH_FILE = /\.(zip|h5|hdf5|hdf|npz)$/i;
const ECG_FILE = /\.(xml|csv|tsv|edf|bdf|rec|dcm|dicom|scp|ecg|ishne|npy|npz|h5|hdf5|hdf|zip)(\.(gz|zst|bz2|xz))?$/i;

// the recording a file is part of: a WFDB header's, for the header and the files of its name beside it
// (.dat/.mat, PTB's .xyz, .atr annotations; not a file of another ECG format), as the server groups them
function recordOf(f, files) {
  const m = f.name.match(/^(.*)\.([^.]+)$/);
  if (!m) return f.name;
  const stem = m[1].toLowerCase(), header = stem + ".hea";
  if (m[2].toLowerCase() === "hea") return header;
  const beside = files.some((g) => g.name.toLowerCase() === header);
  return beside && (/^(dat|mat)$/i.test(m[2]) || !ECG_FILE.test(f.name)) ? header : f.name;
}

function wantsBatch(files) {
  const records = new Set(files.map((f) => recordOf(f, files)));
  return records.size > 1 || files.some((f) => BATCH_FILE.test(f.name));
}

// the query of a request: the signal (to draw), attribution when chosen and asked for, the rate and leads typed in
function query(attribution) {
  const m = $("attr-method").value;
  let q = "signal=true" + (m === "none" || !attribution ? "" : "&attribution=true&attribution_method=" + encodeURIComponent(m));
  const fs = $("fs").value.trim(), leads = $("leads").value.trim();  // for CSV/NumPy files that do not store them
  if (fs) q += "&fs=" + encodeURIComponent(fs);
  if (leads) q += "&leads=" + encodeURIComponent(leads);
  const lead = $("lead").value.trim();
  if (lead && !$("lead-row").hidden) q += "&lead=" + encodeURIComponent(lead);
  return q;
}

// POST the files to an endpoint: [answer, null] or [null, the one-line error to show]
async function post(endpoint, files, q) {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  let r;
  try {
    r = await fetch(endpoint + "?" + q, { method: "POST", body: form, headers: authHeaders() });
  } catch (e) { return [null, "network error: " + e]; }
  let body = null;
  try { body = await r.json(); } catch (e) { body = { detail: r.statusText }; }
  if (r.ok) return [body, null];
  const wait = r.headers.get("Retry-After");
  return [null, "error " + r.status + ": " + (body.detail || r.statusText) + (wait ? " (retry in " + wait + " s)" : "")];
}

async function analyse(picked) {
  const files = Array.from(picked || []);
  if (!files.length) return;
  setStatus("Analysing " + files.map((f) => f.name).join(", ") + " …");
  $("result").hidden = true;
  $("batch").hidden = true;
  last = lastBatch = pages = null;
  lastFiles = files;
  const t0 = performance.now();
  if (!wantsBatch(files)) {
    const q = query(true);
    const [answer, error] = await post("/v1/predict", files, q);
    if (answer) {
      last = answer;
      pages = { req: { files, q }, answers: { 0: answer }, wanted: 0 };
      show(answer);
      setStatus("Done in " + Math.round(answer.timing_ms.total) + " ms.");
      return;
    }
    if (!error.includes("/v1/predict/batch")) { setStatus(error, true); return; }  // else: a file of several recordings
  }
  // the list without attribution (costly for each); a recording's comes when it is chosen
  const [batch, error] = await post("/v1/predict/batch", files, query(false));
  if (!batch) { setStatus(error, true); return; }
  const ms = Math.round(performance.now() - t0);
  const first = batch.items.findIndex((it) => it.ok);
  lastBatch = batch;
  const skipped = batch.n_skipped || 0, n = batch.items.length - skipped;  // (files of a zip passed over: no recordings)
  if (n > 1 || first < 0 || skipped) showBatch(batch);  // (one recording after all: shown as a single answer)
  const passed = skipped ? ", " + count(skipped, "file") + " passed over" : "";
  setStatus(n === 1 && first === 0 && !skipped ? "Done in " + ms + " ms." : (first < 0 ? (n > 1 ? "None of the " + n +
    " recordings could be analysed" : "Nothing could be analysed") + passed : "Done: " + count(n, "recording") + ", " +
    batch.n_ok + " analysed, " + batch.n_failed + " failed" + passed) + " (" + ms + " ms).", first < 0);
  if (first >= 0) await choose(first);
}

// "1 recording", "3 recordings"
function count(n, noun) { return n + " " + noun + (n === 1 ? "" : "s"); }

// the files and member to send to /v1/predict for one item of a batch: an item named after a file
// is that file (a WFDB record: its parts too), "FILE#k" recording k of FILE
function itemRequest(name) {
  let f = lastFiles.find((g) => g.name === name), member = null;
  const m = name.match(/^(.*)#(\d+)$/);
  if (!f && m) { f = lastFiles.find((g) => g.name === m[1]); member = Number(m[2]); }
  if (!f) return null;
  const record = recordOf(f, lastFiles);
  const files = lastFiles.filter((g) => recordOf(g, lastFiles) === record);
  return { files, q: query(true) + (member === null ? "" : "&member=" + member) };
}

// the list of a batch's recordings: each analysed one a button that shows it, each failure its reason;
// then each file of a zip passed over (status "skipped"), with why
function showBatch(batch) {
  $("batch").hidden = false;
  const skipped = batch.n_skipped || 0;
  const n = batch.items.length - skipped;  // (nothing analysed: the items are failures, an archive's own included)
  $("batch-title").textContent = [n ? count(n, batch.n_ok ? "recording" : "failure") : "",
    skipped ? count(skipped, "file") + " passed over" : ""].filter(Boolean).join(" · ");
  const list = $("batch-list");
  list.replaceChildren();
  batch.items.forEach((it, k) => {
    const li = document.createElement("li");
    if (!it.ok) {
      li.className = it.status === "skipped" ? "skipped" : "failed";
      li.textContent = it.error;  // (the server's line names the file)
    } else {
      const a = it.result, b = document.createElement("button");
      b.type = "button"; b.dataset.k = String(k);
      const top = a.findings.length ? a.findings[0].label + " " + (100 * (a.findings[0].calibrated_probability ??
        a.findings[0].probability)).toFixed(0) + " %" + (a.findings.length > 1 ? " (+" + (a.findings.length - 1) + ")" : "")
        : "no label above its threshold";
      b.textContent = it.name;
      const s = document.createElement("span");
      s.className = "muted";
      const nf = a.quality.flags.length;
      s.textContent = " " + a.record.id + " · " + top + " · quality: " + (nf ? nf + " flag" + (nf > 1 ? "s" : "") : qualityWord(a.quality));
      s.title = "quality: " + qualityWord(a.quality);
      b.addEventListener("click", () => choose(k));
      li.append(b, s);
    }
    list.append(li);
  });
}

// show item k of the batch listed; its attribution (when chosen) is asked for now, once
async function choose(k) {
  const batch = lastBatch, item = batch.items[k];
  chosen = k;
  last = item.result;
  for (const b of $("batch-list").querySelectorAll("button")) {
    if (b.dataset.k === String(k)) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
  }
  const req = itemRequest(item.name);
  pages = req ? { req, answers: { 0: item.result }, wanted: 0 } : null;
  show(last);
  if ($("attr-method").value === "none" || explained.has(item) || !req) return;
  $("shading-note").textContent = "Attribution shading: computing \u2026";
  const [answer, error] = await post("/v1/predict", req.files, req.q);
  if (answer) { item.result = answer; explained.add(item); }
  if (lastBatch !== batch || chosen !== k) return;  // another file or recording was chosen meanwhile
  if (answer) pages.answers[0] = answer;
  if (pages.wanted !== 0) return;  // another page was chosen meanwhile: it is shown, this one kept
  if (answer) { last = answer; show(answer); }
  else $("shading-note").textContent = "No attribution shading: " + error;
}

// a long recording is shown a page at a time (10 s; a minute of 1-3 leads): the page from second
// `start` is asked for with its attribution, once, and kept
async function goTo(start) {
  const here = pages;
  if (!here || !last) return;
  const page = last.signal.page_s, total = last.record.duration_s;
  const which = "Page " + start + "\u2013" + Math.min(start + page, total).toFixed(0) + " s of " + total.toFixed(1) + " s";
  here.wanted = start;
  if (!here.answers[start]) {
    setStatus(which + " \u2026");
    const [answer, error] = await post("/v1/predict", here.req.files, here.req.q + "&start=" + start);
    if (answer) here.answers[start] = answer;
    // another file, recording or page was chosen meanwhile (its answer may have come first): that one stays
    if (pages !== here || here.wanted !== start) return;
    if (!answer) { setStatus(error, true); return; }
  }
  last = here.answers[start];
  show(last);
  setStatus(which + ".");
}

// the pages of the recording shown: earlier/later, and one button per page, shaded by the share
// of the attribution in it (where the model looked), the page with the most in bold
function showPages(a) {
  const nav = $("pages"), sig = a.signal, at = a.attribution;
  const page = sig ? sig.page_s : 0, total = a.record.duration_s, start = sig ? sig.start_s || 0 : 0;
  const n = page ? Math.ceil(total / page - 1e-9) : 0;
  nav.hidden = !pages || n <= 1;
  if (nav.hidden) return;
  const shares = at && at.available && at.page_share && at.page_share.length === n ? at.page_share : null;
  const top = shares ? shares.indexOf(Math.max(...shares)) : -1;
  $("page-label").textContent = start.toFixed(0) + "\u2013" + Math.min(start + page, total).toFixed(0) + " s of " +
    total.toFixed(1) + " s";
  $("page-prev").disabled = start <= 0;
  $("page-next").disabled = start + page >= total - 1e-9;
  const map = $("page-map");
  map.replaceChildren();
  for (let k = 0; k < n && k < 120; k++) {
    const b = document.createElement("button");
    b.type = "button"; b.dataset.start = String(k * page);
    b.textContent = String(k * page);
    if (shares) {
      b.style.background = "rgba(220, 30, 30, " + (0.6 * shares[k] / (shares[top] || 1)).toFixed(3) + ")";
      b.title = (100 * shares[k]).toFixed(0) + " % of the attribution";
      if (k === top) b.classList.add("most");
    }
    if (Math.abs(k * page - start) < 1e-6) b.setAttribute("aria-current", "true");
    b.addEventListener("click", () => goTo(k * page));
    map.append(b);
  }
}

function leadRows(sig) {
  const rows = {};
  sig.leads.forEach((name, k) => { if (!(name in rows)) rows[name] = sig.data[k]; });
  if (rows.I && rows.II) {
    const i = rows.I, ii = rows.II, n = Math.min(i.length, ii.length);
    const derive = (a, b) => Array.from({ length: n }, (_, t) => a * i[t] + b * ii[t]);
    if (!rows.III) rows.III = derive(-1, 1);
    if (!rows.aVR) rows.aVR = derive(-0.5, -0.5);
    if (!rows.aVL) rows.aVL = derive(1, -0.5);
    if (!rows.aVF) rows.aVF = derive(-0.5, 1);
  }
  return rows;
}

function median(v) {
  const s = Array.from(v).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : 0;
}

function drawGrid(ctx, w, h) {
  for (let x = 0; x <= w; x += 1) {
    ctx.strokeStyle = x % 5 === 0 ? "#e38b8b" : "#f4c6c6";
    ctx.lineWidth = x % 5 === 0 ? 1 : 0.5;
    ctx.beginPath(); ctx.moveTo((MARGIN + x) * PX, MARGIN * PX); ctx.lineTo((MARGIN + x) * PX, (MARGIN + h) * PX); ctx.stroke();
  }
  for (let y = 0; y <= h; y += 1) {
    ctx.strokeStyle = y % 5 === 0 ? "#e38b8b" : "#f4c6c6";
    ctx.lineWidth = y % 5 === 0 ? 1 : 0.5;
    ctx.beginPath(); ctx.moveTo(MARGIN * PX, (MARGIN + y) * PX); ctx.lineTo((MARGIN + w) * PX, (MARGIN + y) * PX); ctx.stroke();
  }
}

// Shade where the model looked: red cells with opacity proportional to the attribution.
function shade(ctx, attr, lead, t0, t1, x0, yMid, rowH) {
  if (!attr || !attr.available) return 0;
  const k = attr.leads.indexOf(lead);
  if (k < 0) return 0;
  const vals = attr.values[k], fs = attr.fs, bin = Math.max(1, Math.round(fs * 0.04));
  let n = 0;
  for (let s = Math.round(t0 * fs); s < Math.min(vals.length, Math.round(t1 * fs)); s += bin) {
    let m = 0;
    for (let j = s; j < Math.min(vals.length, s + bin); j++) m = Math.max(m, vals[j]);
    if (m < 0.15) continue;
    ctx.fillStyle = "rgba(220, 30, 30, " + (0.55 * m).toFixed(3) + ")";
    ctx.fillRect((MARGIN + x0 + (s / fs - t0) * SPEED) * PX, (MARGIN + yMid - rowH / 2) * PX, (bin / fs) * SPEED * PX + 0.5, rowH * PX);
    n++;
  }
  return n;
}

function trace(ctx, v, fs, t0, t1, x0, yMid, rowH) {
  const a = Math.round(t0 * fs), b = Math.min(v.length, Math.round(t1 * fs));
  if (b <= a) return 0;
  const base = median(v.slice(a, b)), clip = rowH * 0.95;
  ctx.strokeStyle = "#111"; ctx.lineWidth = 1.2; ctx.beginPath();
  for (let s = a; s < b; s++) {
    const y = Math.max(-clip, Math.min(clip, (v[s] - base) * GAIN));
    const px = (MARGIN + x0 + ((s - a) / fs) * SPEED) * PX, py = (MARGIN + yMid - y) * PX;
    if (s === a) ctx.moveTo(px, py); else ctx.lineTo(px, py);
  }
  ctx.stroke();
  return 1;
}

// millimetres a row's traces reach beyond the canvas's margin (sign 1: above the top row, -1: below the bottom
// one), as trace() draws them: at most 0.95 of a row from the midline
function overhang(leads, sign, rowH) {
  let most = 0;
  for (const v of leads) {
    if (!v || !v.length) continue;
    const base = median(v);
    for (let s = 0; s < v.length; s++) most = Math.max(most, sign * (v[s] - base) * GAIN);
  }
  return Math.ceil(Math.max(0, Math.min(most, 0.95 * rowH) - rowH / 2 - MARGIN + 1));
}

function calPulse(ctx, yMid) {
  const x = MARGIN + 2, y = MARGIN + yMid;
  ctx.strokeStyle = "#111"; ctx.lineWidth = 1.2; ctx.beginPath();
  ctx.moveTo(x * PX, y * PX); ctx.lineTo((x + 1) * PX, y * PX); ctx.lineTo((x + 1) * PX, (y - GAIN) * PX);
  ctx.lineTo((x + 6) * PX, (y - GAIN) * PX); ctx.lineTo((x + 6) * PX, y * PX); ctx.lineTo((x + 7) * PX, y * PX); ctx.stroke();
}

function label(ctx, text, x, y, flagged, after) {  // after: e.g. the seconds of a rhythm strip
  ctx.font = "bold " + (3.2 * PX) + "px sans-serif";
  ctx.fillStyle = flagged ? "#c25e00" : "#111";
  ctx.fillText(text + (flagged ? " !" : "") + (after || ""), (MARGIN + x) * PX, (MARGIN + y) * PX);
}

function drawECG(answer) {
  const sig = answer.signal, attr = answer.attribution, canvas = $("ecg");
  const rows = leadRows(sig), fs = sig.fs;
  const flagged = new Set(answer.quality.flagged_leads || []);
  const has12 = STANDARD.every((l) => l in rows);
  const names = has12 ? null : sig.leads;
  const span = sig.data.length ? sig.data[0].length / fs : 0;  // seconds sent: 10, or a minute of 1-3 leads
  // a recording of few leads over more than 10 s: consecutive 10-s strips, the leads of each 10 s together
  const strips = !has12 && (span > 10.05 || sig.start_s > 0) ? Array.from({ length: Math.ceil(span / 10 - 1e-9) }, (_, k) => k)
    .flatMap((k) => names.map((name) => [k, name])) : null;
  const nRows = has12 ? 4 : strips ? strips.length : names.length;
  const rowH = has12 ? 40 : (strips || names.length > 3 ? 30 : 40);
  const w = CAL_W + 10 * SPEED, h = nRows * rowH;
  // a complex taller than its row runs into the row above (paper convention), but not off the canvas: room is
  // added above the top row and below the bottom one for the excursions of the leads drawn there
  const ends = has12 ? [COLUMNS.map((c) => c[0]), ["II"]] : strips ? [[strips[0][1]], [strips[strips.length - 1][1]]]
    : [[names[0]], [names[names.length - 1]]];
  const top = overhang(ends[0].map((n) => rows[n]), 1, rowH), bottom = overhang(ends[1].map((n) => rows[n]), -1, rowH);
  canvas.width = (w + 2 * MARGIN) * PX;
  canvas.height = (h + 2 * MARGIN + 6 + top + bottom) * PX;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.translate(0, top * PX);
  canvas.dataset.padding = top + "," + bottom;
  drawGrid(ctx, w, h);
  let traces = 0, shaded = 0;
  const mid = (r) => (r + 0.5) * rowH;
  if (has12) {
    COLUMNS.forEach((col, c) => {
      const t0 = c * 2.5, x0 = CAL_W + t0 * SPEED;
      col.forEach((name, r) => {
        shaded += shade(ctx, attr, name, t0, t0 + 2.5, x0, mid(r), rowH);
        traces += trace(ctx, rows[name], fs, t0, t0 + 2.5, x0, mid(r), rowH);
        label(ctx, name, x0 + 1.5, mid(r) - 0.3 * rowH, flagged.has(name));
      });
    });
    for (let r = 0; r < 4; r++) calPulse(ctx, mid(r));
    shaded += shade(ctx, attr, "II", 0, 10, CAL_W, mid(3), rowH);
    traces += trace(ctx, rows.II, fs, 0, 10, CAL_W, mid(3), rowH);
    label(ctx, "II", CAL_W + 1.5, mid(3) - 0.3 * rowH, flagged.has("II"));
  } else if (strips) {
    strips.forEach(([k, name], r) => {
      const t0 = 10 * k, t1 = Math.min(t0 + 10, span);
      calPulse(ctx, mid(r));
      shaded += shade(ctx, attr, name, t0, t1, CAL_W, mid(r), rowH);
      traces += trace(ctx, rows[name], fs, t0, t1, CAL_W, mid(r), rowH);
      const at0 = (sig.start_s || 0) + t0;  // the strip's seconds in the recording
      label(ctx, name, CAL_W + 1.5, mid(r) - 0.3 * rowH, flagged.has(name),
        "  " + (Math.round(at0 * 10) / 10) + "\u2013" + (Math.round((at0 + t1 - t0) * 10) / 10) + " s");
    });
  } else {
    names.forEach((name, r) => {
      calPulse(ctx, mid(r));
      shaded += shade(ctx, attr, name, 0, 10, CAL_W, mid(r), rowH);
      traces += trace(ctx, rows[name], fs, 0, 10, CAL_W, mid(r), rowH);
      label(ctx, name, CAL_W + 1.5, mid(r) - 0.3 * rowH, flagged.has(name));
    });
  }
  ctx.translate(0, bottom * PX);  // the notes below the traces of the bottom row
  ctx.font = (3 * PX) + "px sans-serif"; ctx.fillStyle = "#333";
  ctx.fillText(SPEED + " mm/s   " + GAIN + " mm/mV", (MARGIN + w - 40) * PX, (MARGIN + h + 5) * PX);
  const start = sig.start_s || 0, shown = Math.min(Math.max(span, 10), answer.record.duration_s - start);
  if (answer.record.duration_s > start + shown + 0.05) {  // the printout shows part of it: say which, of how many
    ctx.fillText("printout: " + start.toFixed(0) + "\u2013" + (start + shown).toFixed(0) + " s of " +
      answer.record.duration_s.toFixed(1) + " s", (MARGIN + CAL_W) * PX, (MARGIN + h + 5) * PX);
  }
  canvas.setAttribute("aria-label", (has12 ? "12-lead" : names.length + "-lead") + (strips ? " rhythm" : "") +
    " ECG printout");
  canvas.dataset.traces = String(traces);
  canvas.dataset.shaded = String(shaded);
}

function show(a) {
  $("result").hidden = false;
  $("record").textContent = a.record.id + " · " + (a.record.format || "") + " · " + a.record.fs + " Hz · " +
    a.record.leads.length + (a.record.leads.length === 1 ? " lead · " : " leads · ") + a.record.duration_s.toFixed(1) + " s" +
    ((a.record.derived_leads || []).length ? " · derived: " + a.record.derived_leads.join(", ") : "");  // (not in the file)
  drawECG(a);
  showPages(a);
  const at = a.attribution;
  let most = "";
  if (at && at.available && at.page_share && at.page_share.length > 1) {
    const k = at.page_share.indexOf(Math.max(...at.page_share)), p = at.page_s;
    most = " Most of it lies in " + k * p + "\u2013" + Math.min((k + 1) * p, a.record.duration_s).toFixed(0) + " s (" +
      (100 * at.page_share[k]).toFixed(0) + " %): the page buttons above are shaded by their share.";
  }
  $("shading-note").textContent = at && at.available
    ? "Red shading: where the model looked for \u201c" + at.label + "\u201d (" + at.method + ")." + leadNote(at) + most
    : "No attribution shading: " + ((at && at.note) || "not requested") + ".";
  $("flag-note").textContent = (a.quality.flagged_leads || []).length
    ? "Orange lead name with \u201c!\u201d: that lead has a signal-quality flag (listed under Signal quality)." : "";
  const fl = $("findings");
  fl.replaceChildren();
  if (!a.findings.length) { const li = document.createElement("li"); li.textContent = "no label above its threshold"; fl.append(li); }
  for (const f of a.findings) {
    const li = document.createElement("li");
    const p = f.calibrated_probability ?? f.probability;
    li.innerHTML = "";
    li.append(document.createTextNode(f.label + " "));
    const s = document.createElement("span"); s.className = "p";
    s.textContent = (100 * p).toFixed(1) + " % (threshold " + (100 * f.threshold).toFixed(0) + " %" +
      (f.calibrated_probability != null ? ", calibrated" : "") + ")";
    li.append(s); fl.append(li);
  }
  $("findings-note").textContent = calibrationNote(a);
  const ql = $("quality");
  ql.replaceChildren();
  const q = a.quality;
  if (!q.flags.length) {  // green "good" only where the recording was assessed
    const li = document.createElement("li"); li.className = q.available ? "ok" : "muted"; li.textContent = qualityWord(q); ql.append(li);
  }
  for (const f of q.flags) {  // in words (the service's, from the package's list of checks), the flag's code after
    const li = document.createElement("li"); li.className = "flag"; li.title = f;
    const code = document.createElement("code"); code.textContent = f;
    li.append(document.createTextNode(flagWord(q, f) + " "), code); ql.append(li);
  }
  for (const n of a.notes) { const li = document.createElement("li"); li.className = "muted"; li.textContent = n; ql.append(li); }
  if (q.note) { const li = document.createElement("li"); li.className = "muted small"; li.textContent = q.note; ql.append(li); }
  const dl = $("modelinfo");
  dl.replaceChildren();
  const c = a.model.contract;
  const items = [["model", a.model.id], ["revision", a.model.revision || "—"], ["weights SHA-256", a.model.weights_sha256 || "—"],
    ["input", c.fs + " Hz, " + c.n_samples + " samples, " + c.leads.length + " leads, " + c.mode],
    ["schema", a.schema_version], ["package", a.model.package_version]];
  for (const [k, v] of items) { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; dl.append(dt, dd); }
}

// a method that does not resolve leads (Grad-CAM) shades every lead alike: said, lest it read as all of them
function leadNote(at) {
  return at.note ? " " + at.note.charAt(0).toUpperCase() + at.note.slice(1) + ": the shading is the same on every lead." : "";
}

// what the percentages are: calibrated probabilities, or the model's scores (most weights carry no calibration)
function calibrationNote(a) {
  return a.labels.some((l) => l.calibrated_probability != null)
    ? "Marked \u201ccalibrated\u201d: calibrated probabilities; any other percentage is the model's uncalibrated score."
    : "Percentages are the model's scores, not calibrated probabilities: these weights carry no calibration.";
}

// the signal quality in a few words: its flags, "good" (assessed, no flag), or that it was not assessed
function qualityWord(q) {
  if (q.flags.length) return q.flags.map((f) => flagWord(q, f)).join("; ");
  return q.available ? "good (no flags)" : "not assessed (no flags from preprocessing)";
}

// one flag in words, as the answer gives them (an older server's answer has none: its code)
function flagWord(q, f) { return (q.words && q.words[f]) || f; }

function esc(s) { return String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[ch])); }

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url; a.download = name; document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function reportHTML(a) {
  const img = $("ecg").toDataURL("image/png");
  const rows = a.findings.map((f) => "<tr><td>" + esc(f.label) + "</td><td>" + (100 * (f.calibrated_probability ?? f.probability)).toFixed(1) +
    " %" + (f.calibrated_probability != null ? ", calibrated" : "") + "</td><td>" + (100 * f.threshold).toFixed(0) + " %</td></tr>").join("") || "<tr><td colspan=3>no label above its threshold</td></tr>";
  const calNote = "<p>" + esc(calibrationNote(a)) + "</p>";
  const flags = a.quality.flags.length
    ? "<ul>" + a.quality.flags.map((f) => "<li>" + esc(flagWord(a.quality, f)) + " <code>" + esc(f) + "</code></li>").join("") + "</ul>"
    : "<p>" + esc(qualityWord(a.quality)) + "</p>";
  const c = a.model.contract;
  const at = a.attribution && a.attribution.available
    ? "<p>Red shading: attribution for \u201c" + esc(a.attribution.label) + "\u201d (" + esc(a.attribution.method) + ")." +
      esc(leadNote(a.attribution)) + "</p>" : "";
  return "<!doctype html><html><head><meta charset='utf-8'><title>ECG report " + esc(a.record.id) + "</title>" +
    "<style>body{font-family:sans-serif;margin:2em}img{max-width:100%}td,th{padding:2px 10px;text-align:left}</style></head><body>" +
    "<h1>ECG report: " + esc(a.record.id) + "</h1><p>" + esc(a.record.filename || "") + " · " + a.record.fs + " Hz · " +
    a.record.duration_s.toFixed(1) + " s</p><img alt='ECG' src='" + img + "'>" + at +
    "<h2>Findings</h2><table><tr><th>label</th><th>probability</th><th>threshold</th></tr>" + rows + "</table>" + calNote +
    "<h2>Signal quality</h2>" + flags + ((a.quality.flagged_leads || []).length
      ? "<p>Orange lead name with \u201c!\u201d on the printout: that lead has a signal-quality flag.</p>" : "") +
    "<h2>Model</h2><p>" + esc(a.model.id) + " · weights SHA-256 " + esc(a.model.weights_sha256 || "unknown") +
    " · package " + esc(a.model.package_version) + " · schema " + esc(a.schema_version) + "</p>" +
    "<p>Input: " + c.fs + " Hz, " + c.n_samples + " samples, leads " + esc(c.leads.join(" ")) + ", " + esc(c.mode) +
    " preprocessing (notch " + c.notch_hz + " Hz, band " + c.band_hz.join("\u2013") + " Hz).</p>" +
    "<p><em>Research software, not a medical device.</em></p></body></html>";
}

function init() {
  $("token").value = sessionStorage.getItem("ecgfounder-token") || "";
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); analyse(e.dataTransfer.files); });
  // cleared after each pick, so that choosing the same file again (e.g. after setting the rate) analyses it again
  $("file").addEventListener("change", (e) => { const fl = Array.from(e.target.files); e.target.value = ""; analyse(fl); });
  $("token").addEventListener("change", loadModel);
  $("page-prev").addEventListener("click", () => last && goTo(Math.max(0, (last.signal.start_s || 0) - last.signal.page_s)));
  $("page-next").addEventListener("click", () => last && goTo((last.signal.start_s || 0) + last.signal.page_s));
  $("download-json").addEventListener("click", () => last && download("ecgfounder-" + last.record.id + ".json", "application/json", JSON.stringify(last, null, 2)));
  $("download-all").addEventListener("click", () => lastBatch && download("ecgfounder-batch.json", "application/json", JSON.stringify(lastBatch, null, 2)));
  $("download-report").addEventListener("click", () => last && download("ecgfounder-report-" + last.record.id + ".html", "text/html", reportHTML(last)));
  loadModel();
}

init();
