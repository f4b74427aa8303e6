// The vidfm page: plain JS over the /v1 API (no CDN, works offline).
"use strict";
const $ = (sel) => document.querySelector(sel);
const keyInput = $("#api-key");
keyInput.value = localStorage.getItem("vidfm-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("vidfm-key", keyInput.value); init(); });

function headers() { return keyInput.value ? { "X-API-Key": keyInput.value } : {}; }
function status(text, error = false) { const s = $("#status"); s.textContent = text; s.className = error ? "error" : ""; }

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...headers(), ...(options.headers || {}) } });
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : await res.blob();
  if (!res.ok) {
    const detail = body && body.detail;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail || res.statusText));
  }
  return body;
}
async function blobUrl(path) { return URL.createObjectURL(await api(path)); }

// -- tabs --------------------------------------------------------------------------------------
document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll("#tabs button, .tab").forEach((e) => e.classList.remove("active"));
  b.classList.add("active");
  $("#tab-" + b.dataset.tab).classList.add("active");
}));

// -- the chosen video ------------------------------------------------------------------------------
let models = {};
const current = { file: null, name: null };
function videoForm(extra = {}) {
  const form = new FormData();
  if (current.file) form.append("file", current.file, current.file.name);
  else if (current.name) form.append("video", current.name);
  else throw new Error("choose a video first (upload one or pick one from the media folder)");
  for (const [k, v] of Object.entries(extra)) form.append(k, v);
  return form;
}
$("#file").addEventListener("change", (e) => {
  current.file = e.target.files[0] || null; current.name = null; $("#media").value = "";
  if (current.file) { $("#preview").src = URL.createObjectURL(current.file); $("#ask-video").textContent = current.file.name; }
});
$("#media").addEventListener("change", async (e) => {
  current.name = e.target.value || null; current.file = null; $("#file").value = "";
  if (current.name) {
    $("#ask-video").textContent = current.name;
    try { $("#preview").src = await blobUrl("/v1/media/" + encodeURIComponent(current.name)); } catch (err) { status(err.message, true); }
  }
});

function fmt(x, d = 2) { return typeof x === "number" ? x.toFixed(d) : x; }
function figure(src, caption) {
  const f = document.createElement("figure");
  const img = document.createElement("img"); img.src = src; img.alt = caption;
  const c = document.createElement("figcaption"); c.textContent = caption;
  f.append(img, c); return f;
}

$("#analyze").addEventListener("click", async () => {
  try {
    status("analyzing…");
    const probe = await api("/v1/probe", { method: "POST", body: videoForm() });
    const rows = [["file", probe.path], ["size", `${probe.width}×${probe.height}`], ["frames", probe.frames], ["fps", fmt(probe.fps, 3)],
      ["duration", fmt(probe.duration) + " s"], ["codec", `${probe.codec} ${probe.pix_fmt}`], ["audio", probe.has_audio ? "yes" : "no"]];
    $("#probe").replaceChildren(...rows.map(([k, v]) => { const tr = document.createElement("tr");
      tr.innerHTML = "<td></td><td></td>"; tr.children[0].textContent = k; tr.children[1].textContent = v; return tr; }));
    const shots = await api("/v1/shots", { method: "POST", body: videoForm({ method: "student" }) });
    const total = probe.duration || 1;
    $("#timeline").replaceChildren(...shots.shots.map((s, i) => { const d = document.createElement("div");
      d.style.flex = String((s.end - s.start) / total); d.style.background = `hsl(${(i * 67) % 360} 55% 55%)`;
      d.title = `shot ${i + 1}: ${fmt(s.start)}–${fmt(s.end)} s`; return d; }));
    $("#shots").replaceChildren(...shots.shots.map((s, i) => figure(s.thumbnail, `shot ${i + 1} · ${fmt(s.start, 1)}–${fmt(s.end, 1)} s`)));
    const scenes = await api("/v1/scenes", { method: "POST", body: videoForm() });
    $("#scenes").replaceChildren(...scenes.scenes.map((s, i) => figure(s.thumbnail, `scene ${i + 1} · keyframe ${fmt(s.keyframe_time, 1)} s`)));
    if (models.classifier && models.classifier.configured) {
      const c = await api("/v1/classify", { method: "POST", body: videoForm({ top: 3 }) });
      $("#classes").textContent = "classifier: " + c.labels.map((l) => `${l.label} ${fmt(l.probability)}`).join(", ");
    }
    status(`${probe.path}: ${shots.shots.length} shots, ${scenes.scenes.length} scenes`);
  } catch (err) { status(err.message, true); }
});

// -- search ---------------------------------------------------------------------------------------
$("#search-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    status("searching…");
    const res = await api("/v1/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ query: $("#query").value, top: 6 }) });
    const cards = await Promise.all(res.hits.map(async (h) => {
      const card = document.createElement("div"); card.className = "hit";
      const v = document.createElement("video"); v.muted = true; v.loop = true; v.playsInline = true; v.controls = true;
      v.src = (await blobUrl(h.url)) + `#t=${h.start},${h.end}`;
      v.addEventListener("loadedmetadata", () => { v.currentTime = h.start; v.play().catch(() => {}); });
      const label = document.createElement("div"); label.textContent = `#${h.rank} ${h.video} · ${fmt(h.start, 1)}–${fmt(h.end, 1)} s · score ${fmt(h.score, 3)}`;
      card.append(v, label); return card;
    }));
    $("#hits").replaceChildren(...cards);
    status(`${res.hits.length} hits for “${res.query}”`);
  } catch (err) { status(err.message, true); }
});

// -- ask, caption, ground ----------------------------------------------------------------------------
$("#caption").addEventListener("click", async () => {
  try { status("captioning…"); const r = await api("/v1/caption", { method: "POST", body: videoForm() }); $("#caption-out").textContent = r.caption || "(the model said nothing)"; status("captioned " + r.video); }
  catch (err) { status(err.message, true); }
});
$("#ask-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try { status("thinking…"); const r = await api("/v1/ask", { method: "POST", body: videoForm({ question: $("#question").value }) }); $("#answer").textContent = r.answer || "(the model said nothing)"; status("answered"); }
  catch (err) { status(err.message, true); }
});
$("#ground-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const r = await api("/v1/ground", { method: "POST", body: videoForm({ query: $("#moment").value }) });
    $("#moments").replaceChildren(...r.moments.map((m) => { const li = document.createElement("li");
      li.textContent = `${fmt(m.start)}–${fmt(m.end)} s (confidence ${fmt(m.confidence)})`; return li; }));
    status("grounded");
  } catch (err) { status(err.message, true); }
});

// -- generate ------------------------------------------------------------------------------------------
$("#generate-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const job = await api("/v1/generate", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt: $("#prompt").value, steps: Number($("#steps").value), seed: Number($("#seed").value) }) });
    const box = document.createElement("div"); box.className = "job"; box.dataset.job = job.id;
    const title = document.createElement("div"); title.textContent = `“${job.params.prompt}” · ${job.status}`;
    const bar = document.createElement("progress"); bar.max = 1; bar.value = 0;
    const cancel = document.createElement("button"); cancel.textContent = "Cancel";
    cancel.addEventListener("click", () => api(`/v1/jobs/${job.id}/cancel`, { method: "POST" }).catch((err) => status(err.message, true)));
    box.append(title, bar, cancel); $("#jobs").prepend(box);
    status("job " + job.id + " queued");
    for (;;) {
      await new Promise((r) => setTimeout(r, 400));
      const j = await api(`/v1/jobs/${job.id}`);
      bar.value = j.progress; title.textContent = `“${j.params.prompt}” · ${j.status} ${Math.round(j.progress * 100)} %`;
      if (j.status === "done") {
        const v = document.createElement("video"); v.controls = true; v.loop = true; v.muted = true; v.autoplay = true;
        v.src = await blobUrl(j.result.webm); cancel.remove(); bar.remove(); box.append(v); status("generated"); return;
      }
      if (j.status === "failed" || j.status === "cancelled") { cancel.remove(); status(`job ${j.status}${j.error ? ": " + j.error : ""}`, j.status === "failed"); return; }
    }
  } catch (err) { status(err.message, true); }
});

// -- start --------------------------------------------------------------------------------------------
async function init() {
  try {
    const info = await api("/v1/models");
    models = info.models;
    $("#models").textContent = "models: " + Object.entries(models).map(([k, v]) => `${k} ${v.configured ? "✓" : "–"}`).join(" · ");
    const media = await api("/v1/media");
    const select = $("#media");
    select.replaceChildren(new Option("(media folder)", ""), ...media.videos.map((v) => new Option(v.name, v.name)));
    status("");
  } catch (err) { status(err.message, true); }
}
init();
