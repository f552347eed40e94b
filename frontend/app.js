// moodtunes frontend: webcam frames -> POST /analyze, boxes and labels over the video, tracks.
// Plain JS, no build step; every emotion name comes from GET /api/emotions.
"use strict";

const FRAME_INTERVAL_MS = 300;
const FRAME_MAX_WIDTH = 640;
const TIMELINE_MS = 30_000;
const RETRY_MS = 2000;
const TRACK_LIMIT = 10;
const PHOTO_MAX_SIDE = 1600;
const PHOTO_MAX_BYTES = 2 * 1024 * 1024;
// Frames carry the previous frame's face boxes so the service searches only around them (much less
// work); every FULL_SCAN_EVERY-th frame searches the whole picture so newcomers are found.
const FULL_SCAN_EVERY = 5;

const $ = (id) => document.getElementById(id);
const els = {
  status: $("status"), alerts: $("alerts"), stage: $("stage"), video: $("video"), photo: $("photo"),
  overlay: $("overlay"), stageMessage: $("stage-message"), faces: $("faces"),
  cameraToggle: $("camera-toggle"), photoButton: $("photo-button"), photoInput: $("photo-input"),
  emotionNow: $("emotion-now"), emotionStable: $("emotion-stable"), bars: $("bars"),
  timeline: $("timeline"), legend: $("legend"),
  emotionPicker: $("emotion-picker"), strategyPicker: $("strategy-picker"),
  tracksFor: $("tracks-for"), tracks: $("tracks"),
};

const state = {
  emotions: [],
  colors: {},
  session: (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2)),
  stream: null,
  running: false,
  override: "",            // "" = camera decides
  strategy: "match",
  forceRecommend: false,    // next frame asks for tracks even if the steady emotion is unchanged
  history: [],              // {t, emotion|null}
  lastResult: null,
  lastSource: null,         // "camera" | "photo"
  problems: {},             // key -> message shown in the alert area
  trackRequests: 0,         // numbers the /recommend requests; only the latest may draw
  frames: 0,                // camera frames sent since the camera started
  faceBoxes: null,          // the last camera frame's faces[].box, or null
};

// ---------- small helpers ----------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setStatus(text) {
  if (els.status.textContent !== text) els.status.textContent = text;
}

function setProblem(key, message) {
  if (message) state.problems[key] = message; else delete state.problems[key];
  els.alerts.replaceChildren(...Object.entries(state.problems).map(([k, m]) => {
    const p = document.createElement("p");
    p.className = "alert";
    p.dataset.problem = k;
    p.textContent = m;
    return p;
  }));
}

function stageMessage(text) {
  els.stageMessage.textContent = text || "";
  els.stageMessage.hidden = !text;
}

function pct(x) {
  return `${Math.round(x * 100)}%`;
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    return body.detail || response.statusText;
  } catch {
    return response.statusText || `HTTP ${response.status}`;
  }
}

// ---------- emotions, colours, pickers ----------

async function loadEmotions() {
  for (;;) {
    try {
      const response = await fetch("/api/emotions");
      if (response.ok) {
        const body = await response.json();
        return body.emotions;
      }
    } catch { /* the gateway is restarting: retry below */ }
    setProblem("gateway", "The moodtunes server cannot be reached. Retrying…");
    await sleep(RETRY_MS);
  }
}

function buildPickers() {
  state.emotions.forEach((emotion, i) => {
    state.colors[emotion] = `hsl(${Math.round((i * 360) / state.emotions.length)} 70% 50%)`;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "chip emotion";
    button.dataset.emotion = emotion;
    button.setAttribute("aria-pressed", "false");
    button.textContent = emotion;
    els.emotionPicker.append(button);

    const li = document.createElement("li");
    li.innerHTML = '<span class="swatch"></span>';
    li.firstChild.style.background = state.colors[emotion];
    li.append(emotion);
    els.legend.append(li);

    const bar = document.createElement("li");
    bar.dataset.emotion = emotion;
    bar.innerHTML = '<span class="bar-label"></span><span class="bar"><span class="fill"></span></span>' +
      '<span class="bar-value">–</span>';
    bar.querySelector(".bar-label").textContent = emotion;
    bar.querySelector(".fill").style.background = state.colors[emotion];
    els.bars.append(bar);
  });

  const noFace = document.createElement("li");
  noFace.innerHTML = '<span class="swatch" style="background: var(--no-face)"></span>no face';
  els.legend.append(noFace);

  els.emotionPicker.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-emotion]");
    if (button) pickEmotion(button.dataset.emotion);
  });
  els.strategyPicker.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-strategy]");
    if (button) pickStrategy(button.dataset.strategy);
  });
}

function press(container, attr, value) {
  for (const b of container.querySelectorAll(`button[${attr}]`)) {
    b.setAttribute("aria-pressed", String(b.getAttribute(attr) === value));
  }
}

function pickEmotion(emotion) {
  state.override = emotion;
  press(els.emotionPicker, "data-emotion", emotion);
  if (emotion) {
    fetchTracks(emotion);
  } else {
    state.forceRecommend = true;
    const steady = state.lastResult && state.lastResult.stable_emotion;
    if (state.lastSource === "photo" && steady) fetchTracks(steady, "photo");
    else if (!state.running) els.tracksFor.textContent = "Tracks follow the camera when it runs.";
  }
}

function pickStrategy(strategy) {
  state.strategy = strategy;
  press(els.strategyPicker, "data-strategy", strategy);
  const steady = state.lastResult && state.lastResult.stable_emotion;
  if (state.override) fetchTracks(state.override);
  else if (state.lastSource === "photo" && steady) fetchTracks(steady, "photo");
  // With the camera running, the next frame's parameters differ and the gateway fetches new tracks.
}

// ---------- tracks ----------

async function fetchTracks(emotion, source = "picked") {
  const query = new URLSearchParams({ emotion, strategy: state.strategy, limit: TRACK_LIMIT });
  const ticket = ++state.trackRequests;
  // Only the latest request may draw: a slow answer for an earlier pick must not replace a newer one.
  const current = () => ticket === state.trackRequests;
  try {
    const response = await fetch(`/recommend?${query}`);
    if (!current()) return;
    if (response.status === 503 || response.status === 502) {
      recommenderProblem(await errorDetail(response));
    } else if (!response.ok) {
      setProblem("recommender", `Tracks could not be fetched: ${await errorDetail(response)}`);
    } else {
      const body = await response.json();
      if (!current()) return;
      recommenderProblem(null);
      renderTracks(body.tracks, emotion, source);
    }
  } catch (err) {
    if (current()) recommenderProblem(`the server cannot be reached (${err.message})`);
  }
}

function recommenderProblem(detail) {
  setProblem("recommender", detail ? `Recommender is down — emotions still work, tracks cannot be ` +
    `updated. (${detail})` : null);
}

function renderTracks(tracks, emotion, source) {
  const how = { camera: "steady camera emotion", picked: "picked by you", photo: "from the photo" }[source];
  els.tracksFor.textContent = tracks.length
    ? `${tracks.length} tracks for “${emotion}” (${how}, ${state.strategy}).`
    : `No tracks found for “${emotion}”.`;
  els.tracksFor.dataset.emotion = emotion;
  els.tracks.replaceChildren(...tracks.map(trackItem));
}

function trackItem(track) {
  const li = document.createElement("li");
  li.className = "track";
  li.dataset.trackId = track.id;
  const title = document.createElement("p");
  title.className = "track-title";
  const name = document.createElement("strong");
  name.textContent = track.name;
  title.append(name, ` — ${track.artists}`);
  const meta = document.createElement("p");
  meta.className = "track-meta";
  meta.textContent = [track.album, track.reason].filter(Boolean).join(" · ");

  const actions = document.createElement("div");
  actions.className = "row";
  const open = document.createElement("a");
  open.href = `https://open.spotify.com/track/${encodeURIComponent(track.id)}`;
  open.target = "_blank";
  open.rel = "noopener";
  open.className = "button-link";
  open.textContent = "Open in Spotify";
  open.setAttribute("aria-label", `Open ${track.name} in Spotify (new tab)`);
  const play = document.createElement("button");
  play.type = "button";
  play.textContent = "Show player";
  play.setAttribute("aria-expanded", "false");
  play.addEventListener("click", () => togglePlayer(li, track, play));
  actions.append(open, play);
  li.append(title, meta, actions);
  return li;
}

// The Spotify embed is loaded only when asked for: one at a time, nothing fetched before a click.
function togglePlayer(li, track, button) {
  const existing = li.querySelector("iframe");
  for (const other of els.tracks.querySelectorAll("iframe")) {
    other.remove();
  }
  for (const b of els.tracks.querySelectorAll("button[aria-expanded='true']")) {
    b.setAttribute("aria-expanded", "false");
    b.textContent = "Show player";
  }
  if (existing) return;
  const frame = document.createElement("iframe");
  frame.src = `https://open.spotify.com/embed/track/${encodeURIComponent(track.id)}`;
  frame.title = `Spotify player: ${track.name}`;
  frame.loading = "lazy";
  frame.allow = "encrypted-media";
  frame.className = "player";
  li.append(frame);
  button.setAttribute("aria-expanded", "true");
  button.textContent = "Hide player";
}

// ---------- results: boxes, labels, bars, timeline ----------

function showResult(result, source) {
  state.lastResult = result;
  state.lastSource = source;
  setProblem("emotion", null);
  drawBoxes(result, source === "camera");
  const faces = result.faces;
  els.faces.textContent = faces.length
    ? faces.map((f, i) => `Face ${i + 1}: ${f.emotion} (${pct(f.confidence)})`).join(", ")
    : "No face found — look into the camera, with light on your face.";
  els.faces.dataset.count = String(faces.length);
  els.emotionNow.textContent = result.emotion || "no face";
  els.emotionStable.textContent = result.stable_emotion || "—";
  updateBars(faces[0]);
  if (source === "camera") pushHistory(result.emotion);

  if (result.recommender_error) recommenderProblem(result.recommender_error);
  if (result.tracks_updated) {
    recommenderProblem(null);
    if (!state.override) {
      state.trackRequests++;
      renderTracks(result.tracks, result.stable_emotion, source);
    }
  }
}

function drawBoxes(result, mirrored) {
  const canvas = els.overlay;
  const media = mirrored ? els.video : els.photo;
  const width = media.clientWidth;
  const height = media.clientHeight;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const scale = width / result.width;
  ctx.font = "600 15px system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  result.faces.forEach((face, i) => {
    const { x, y, w, h } = face.box;
    const left = (mirrored ? result.width - x - w : x) * scale;
    const colour = state.colors[face.emotion] || "#fff";
    ctx.lineWidth = i === 0 ? 4 : 2;
    ctx.strokeStyle = colour;
    ctx.strokeRect(left, y * scale, w * scale, h * scale);
    const label = `${face.emotion} ${pct(face.confidence)}`;
    const textWidth = ctx.measureText(label).width + 10;
    const top = Math.max(y * scale, 22);
    ctx.fillStyle = colour;
    ctx.fillRect(left - 2, top - 22, textWidth, 22);
    ctx.fillStyle = "#111";
    ctx.fillText(label, left + 3, top - 3);
  });
  canvas.dataset.faces = String(result.faces.length);
}

function updateBars(face) {
  for (const li of els.bars.children) {
    const p = face ? face.probabilities[li.dataset.emotion] || 0 : 0;
    li.querySelector(".fill").style.width = pct(p);
    li.querySelector(".bar-value").textContent = face ? pct(p) : "–";
    li.classList.toggle("leading", !!face && face.emotion === li.dataset.emotion);
  }
}

function pushHistory(emotion) {
  const now = performance.now();
  state.history.push({ t: now, emotion });
  while (state.history.length && now - state.history[0].t > TIMELINE_MS) state.history.shift();
  // Time-scaled: each frame's colour lasts until the next frame; the newest is at the right edge.
  els.timeline.replaceChildren(...state.history.map((h, i) => {
    const end = i + 1 < state.history.length ? state.history[i + 1].t : now + FRAME_INTERVAL_MS;
    const span = document.createElement("span");
    span.style.width = `${((end - h.t) / TIMELINE_MS) * 100}%`;
    span.style.background = h.emotion ? state.colors[h.emotion] : "var(--no-face)";
    span.title = h.emotion || "no face";
    return span;
  }));
  const counts = {};
  for (const h of state.history) if (h.emotion) counts[h.emotion] = (counts[h.emotion] || 0) + 1;
  const summary = Object.entries(counts).sort((a, b) => b[1] - a[1])
    .map(([e, n]) => `${e} ${pct(n / state.history.length)}`).join(", ");
  els.timeline.setAttribute("aria-label", `Last 30 seconds: ${summary || "no face"}`);
}

// ---------- talking to /analyze ----------

async function analyze(body, headers, query) {
  let response;
  try {
    response = await fetch(`/analyze?${query}`, { method: "POST", body, headers });
  } catch (err) {
    setProblem("emotion", `The moodtunes server cannot be reached (${err.message}).`);
    return null;
  }
  if (response.ok) return response.json();
  const detail = await errorDetail(response);
  if (response.status === 503 || response.status === 502) {
    setProblem("emotion", `Emotion service is down — no faces can be read right now. (${detail})`);
  } else {
    setProblem("emotion", `The image was refused: ${detail}`);
  }
  return null;
}

function frameQuery(recommend) {
  return new URLSearchParams({ recommend, strategy: state.strategy, limit: TRACK_LIMIT, session: state.session });
}

async function captureFrame() {
  const video = els.video;
  if (!video.videoWidth) return null;
  const scale = Math.min(1, FRAME_MAX_WIDTH / video.videoWidth);
  const canvas = captureFrame.canvas || (captureFrame.canvas = document.createElement("canvas"));
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

// The frame as a raw JPEG body, or as a form with the previous frame's boxes when there are some.
function frameBody(blob) {
  if (!state.faceBoxes || state.frames % FULL_SCAN_EVERY === 0) {
    return [blob, { "Content-Type": "image/jpeg", "X-Session-ID": state.session }];
  }
  const form = new FormData();
  form.append("image", blob, "frame.jpg");
  form.append("boxes", JSON.stringify(state.faceBoxes));
  return [form, { "X-Session-ID": state.session }];
}

// One request at a time: the next frame leaves only after the previous answer came back.
async function cameraLoop() {
  while (state.running) {
    const started = performance.now();
    // A hidden tab sends nothing: no one is looking, and the server has other faces to read.
    const blob = document.hidden ? null : await captureFrame();
    let ok = true;
    if (blob) {
      let recommend = state.override ? "never" : "auto";
      if (!state.override && state.forceRecommend) recommend = "always";
      const result = await analyze(...frameBody(blob), frameQuery(recommend));
      state.frames += 1;
      state.faceBoxes = result && result.faces.length ? result.faces.map((f) => f.box) : null;
      ok = result !== null;
      if (result && state.running) {
        if (recommend === "always") state.forceRecommend = false;
        showResult(result, "camera");
        setStatus(result.faces.length ? "Watching: camera on." : "Camera on — no face in view.");
      } else if (!result) {
        setStatus("Camera on — waiting for the emotion service.");
      }
    }
    const wait = ok ? FRAME_INTERVAL_MS - (performance.now() - started) : RETRY_MS;
    await sleep(Math.max(0, wait));
  }
}

// ---------- camera and photo ----------

async function startCamera() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    cameraProblem("This browser gives no camera access here (it needs https or localhost). " +
      "Analyse a photo instead.", "no-camera");
    return;
  }
  stageMessage("Asking for the camera…");
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false,
    });
  } catch (err) {
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      cameraProblem("Camera permission was denied. Allow it in the browser, or analyse a photo instead.",
        "denied");
    } else if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      cameraProblem("No camera was found. Analyse a photo instead.", "no-camera");
    } else {
      cameraProblem(`The camera could not start (${err.name}: ${err.message}). Analyse a photo instead.`,
        "no-camera");
    }
    return;
  }
  setProblem("camera", null);
  els.video.srcObject = state.stream;
  els.video.hidden = false;
  els.photo.hidden = true;
  els.stage.dataset.source = "camera";
  await els.video.play().catch(() => {});
  stageMessage("");
  els.cameraToggle.textContent = "Stop camera";
  state.frames = 0;
  state.faceBoxes = null;
  state.running = true;
  state.forceRecommend = true;
  setStatus("Camera on.");
  cameraLoop();
}

function stopCamera() {
  state.running = false;
  if (state.stream) for (const track of state.stream.getTracks()) track.stop();
  state.stream = null;
  els.video.srcObject = null;
  els.cameraToggle.textContent = "Start camera";
  if (els.stage.dataset.source === "camera") {
    els.stage.dataset.source = "none";
    clearOverlay();
    stageMessage("Camera off.");
  }
  setStatus("Camera off.");
}

function cameraProblem(message, kind) {
  setProblem("camera", message);
  els.stage.dataset.camera = kind;
  stageMessage(message);
  els.cameraToggle.textContent = "Try the camera again";
  setStatus(message);
}

function clearOverlay() {
  const ctx = els.overlay.getContext("2d");
  ctx.clearRect(0, 0, els.overlay.width, els.overlay.height);
  els.overlay.dataset.faces = "0";
}

// Phone photos can be far larger than the server accepts and than detection needs: send at most
// PHOTO_MAX_SIDE pixels a side (same proportions, so the boxes still fit the displayed photo).
async function shrinkPhoto(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return file; // not decodable here: let the server say what is wrong with it
  }
  const scale = Math.min(1, PHOTO_MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  if (scale === 1 && file.size <= PHOTO_MAX_BYTES) return file;
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob((blob) => resolve(blob || file), "image/jpeg", 0.9));
}

async function analysePhoto(file) {
  if (state.running) stopCamera();
  setStatus(`Analysing ${file.name}…`);
  const url = URL.createObjectURL(file);
  els.photo.src = url;
  els.photo.hidden = false;
  els.video.hidden = true;
  els.stage.dataset.source = "photo";
  stageMessage("");
  await els.photo.decode().catch(() => {});
  const form = new FormData();
  form.append("image", await shrinkPhoto(file), file.name);
  const recommend = state.override ? "never" : "always";
  const result = await analyze(form, {}, new URLSearchParams({ recommend, strategy: state.strategy,
    limit: TRACK_LIMIT }));
  if (!result) {
    setStatus("The photo could not be analysed.");
    return;
  }
  showResult(result, "photo");
  setStatus(result.faces.length ? `Photo: ${result.faces.length} face(s).` : "No face found in the photo.");
}

// ---------- backend status at start ----------

async function checkServices() {
  try {
    const response = await fetch("/api/status");
    if (!response.ok) return;
    const status = await response.json();
    setProblem("emotion", status.emotion === "ok" ? null
      : `Emotion service is down — no faces can be read right now. (${status.emotion})`);
    recommenderProblem(status.recommender === "ok" ? null : status.recommender);
  } catch { /* analyze reports it */ }
}

async function main() {
  state.emotions = await loadEmotions();
  setProblem("gateway", null);
  buildPickers();
  els.cameraToggle.addEventListener("click", () => (state.running ? stopCamera() : startCamera()));
  els.photoButton.addEventListener("click", () => els.photoInput.click());
  els.photoInput.addEventListener("change", () => {
    const file = els.photoInput.files[0];
    if (file) analysePhoto(file);
    els.photoInput.value = "";
  });
  window.addEventListener("resize", () => {
    if (state.lastResult) drawBoxes(state.lastResult, state.lastSource === "camera");
  });
  await checkServices();
  await startCamera();
}

main();
