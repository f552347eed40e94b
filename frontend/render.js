// Everything the page draws: it reads what it is given (and state.js), and changes nothing else.

import { state, TIMELINE_MS } from "./state.js";

const $ = (id) => document.getElementById(id);
export const els = {
  status: $("status"), alerts: $("alerts"), stage: $("stage"), video: $("video"), photo: $("photo"),
  overlay: $("overlay"), stageMessage: $("stage-message"), faces: $("faces"),
  cameraToggle: $("camera-toggle"), photoButton: $("photo-button"), photoInput: $("photo-input"),
  emotionNow: $("emotion-now"), emotionStable: $("emotion-stable"), bars: $("bars"),
  timeline: $("timeline"), legend: $("legend"),
  emotionPicker: $("emotion-picker"), strategyPicker: $("strategy-picker"),
  tracksFor: $("tracks-for"), tracks: $("tracks"), whyLink: $("why-link"),
  mode: $("mode"), modeText: $("mode-text"), modeToggle: $("mode-toggle"), privacy: $("privacy"),
};

const pct = (x) => `${Math.round(x * 100)}%`;

function element(tag, props = {}, ...children) {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}

export function status(text) {
  if (els.status.textContent !== text) els.status.textContent = text;
}

export function problems() {
  els.alerts.replaceChildren(...Object.entries(state.problems).map(([key, message]) => {
    const p = element("p", { className: "alert", textContent: message });
    p.dataset.problem = key;
    return p;
  }));
}

// ---------- the mode: where faces are read, and what leaves this device ----------

const MODE = {
  ondevice: {
    name: "On-device mode",
    what: "this browser reads your face itself",
    privacy: "On-device mode: frames never leave this device. Only the emotion probabilities of your " +
      "last few frames go to this server, when your steady emotion or your choice of music changes.",
    other: "Use server mode",
  },
  server: {
    name: "Server mode",
    what: "frames go to this server",
    privacy: "Server mode: frames go only to this server, about three a second, and are not stored.",
    other: "Use on-device mode",
  },
};

export function mode() {
  const m = MODE[state.mode];
  els.mode.dataset.mode = state.mode;
  els.modeText.textContent = `${m.name}: ${m.what}${state.modeWhy ? ` (${state.modeWhy})` : ""}.`;
  els.modeToggle.textContent = m.other;
  els.modeToggle.dataset.next = state.mode === "ondevice" ? "server" : "ondevice";
  els.modeToggle.hidden = false;
  els.privacy.textContent = m.privacy;
}

export function modeLoading() {
  els.modeText.textContent = "Loading the on-device models…";
  els.modeToggle.textContent = MODE.ondevice.other;
  els.modeToggle.dataset.next = "server";
  els.modeToggle.hidden = false;
}

export function stageMessage(text) {
  els.stageMessage.textContent = text || "";
  els.stageMessage.hidden = !text;
}

// ---------- pickers, legend, bars ----------

function swatch(colour) {
  const span = element("span", { className: "swatch" });
  span.style.background = colour;
  return span;
}

export function pickers() {
  for (const emotion of state.emotions) {
    const colour = state.colors[emotion];
    const button = element("button", { type: "button", className: "chip emotion", textContent: emotion });
    button.dataset.emotion = emotion;
    button.setAttribute("aria-pressed", "false");
    els.emotionPicker.append(button);
    els.legend.append(element("li", {}, swatch(colour), emotion));
    const fill = element("span", { className: "fill" });
    fill.style.background = colour;
    const bar = element("li", {},
      element("span", { className: "bar-label", textContent: emotion }),
      element("span", { className: "bar" }, fill),
      element("span", { className: "bar-value", textContent: "–" }));
    bar.dataset.emotion = emotion;
    els.bars.append(bar);
  }
  els.legend.append(element("li", {}, swatch("var(--no-face)"), "no face"));
}

export function pressed(container, attr, value) {
  for (const b of container.querySelectorAll(`button[${attr}]`)) {
    b.setAttribute("aria-pressed", String(b.getAttribute(attr) === value));
  }
}

function bars(face) {
  for (const li of els.bars.children) {
    const p = face ? face.probabilities[li.dataset.emotion] || 0 : 0;
    li.querySelector(".fill").style.width = pct(p);
    li.querySelector(".bar-value").textContent = face ? pct(p) : "–";
    li.classList.toggle("leading", !!face && face.emotion === li.dataset.emotion);
  }
}

// ---------- a result: boxes, labels, bars, timeline ----------

export function result(res, source, frameIntervalMs) {
  boxes(res, source === "camera");
  const faces = res.faces;
  els.faces.textContent = faces.length
    ? faces.map((f, i) => `Face ${i + 1}: ${f.emotion} (${pct(f.confidence)})`).join(", ")
    : "No face found — look into the camera, with light on your face.";
  els.faces.dataset.count = String(faces.length);
  els.emotionNow.textContent = res.emotion || "no face";
  els.emotionStable.textContent = res.stable_emotion || "—";
  // "region": only the area around the previous frame's faces was searched; "frame": all of it.
  els.stage.dataset.searched = res.region ? "region" : "frame";
  bars(faces[0]);
  if (source === "camera") timeline(frameIntervalMs);
}

export function boxes(res, mirrored) {
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
  const scale = width / res.width;
  ctx.font = "600 15px system-ui, sans-serif";
  ctx.textBaseline = "bottom";
  res.faces.forEach((face, i) => {
    const { x, y, w, h } = face.box;
    const left = (mirrored ? res.width - x - w : x) * scale;
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
  canvas.dataset.faces = String(res.faces.length);
}

export function clearOverlay() {
  const ctx = els.overlay.getContext("2d");
  ctx.clearRect(0, 0, els.overlay.width, els.overlay.height);
  els.overlay.dataset.faces = "0";
}

// Time-scaled: each frame's colour lasts until the next frame; the newest is at the right edge.
function timeline(frameIntervalMs) {
  const history = state.history;
  const now = history.length ? history[history.length - 1].t : 0;
  els.timeline.replaceChildren(...history.map((h, i) => {
    const end = i + 1 < history.length ? history[i + 1].t : now + frameIntervalMs;
    const span = element("span", { title: h.emotion || "no face" });
    span.style.width = `${((end - h.t) / TIMELINE_MS) * 100}%`;
    span.style.background = h.emotion ? state.colors[h.emotion] : "var(--no-face)";
    return span;
  }));
  const counts = {};
  for (const h of history) if (h.emotion) counts[h.emotion] = (counts[h.emotion] || 0) + 1;
  const summary = Object.entries(counts).sort((a, b) => b[1] - a[1])
    .map(([e, n]) => `${e} ${pct(n / history.length)}`).join(", ");
  els.timeline.setAttribute("aria-label", `Last 30 seconds: ${summary || "no face"}`);
}

// ---------- the stage: camera or photo ----------

export function showCamera(stream) {
  els.video.srcObject = stream;
  els.video.hidden = false;
  els.photo.hidden = true;
  els.stage.dataset.source = "camera";
}

export function cameraOff() {
  els.video.srcObject = null;
  els.cameraToggle.textContent = "Start camera";
  if (els.stage.dataset.source === "camera") {
    els.stage.dataset.source = "none";
    clearOverlay();
    stageMessage("Camera off.");
  }
}

export function cameraProblem(message, kind) {
  els.stage.dataset.camera = kind;
  stageMessage(message);
  els.cameraToggle.textContent = "Try the camera again";
}

export function showPhoto(url) {
  els.photo.src = url;
  els.photo.hidden = false;
  els.video.hidden = true;
  els.stage.dataset.source = "photo";
  stageMessage("");
}

// ---------- tracks ----------

const HOW = { camera: "steady camera emotion", picked: "picked by you", photo: "from the photo" };

export function tracks(list, emotion, source, strategy) {
  els.tracksFor.textContent = list.length
    ? `${list.length} tracks for “${emotion}” (${HOW[source]}, ${strategy}).`
    : `No tracks found for “${emotion}”.`;
  els.tracksFor.dataset.emotion = emotion;
  els.tracksFor.dataset.strategy = strategy;
  els.tracks.replaceChildren(...list.map(trackItem));
  // "Why these songs?" opens the map of what this list is for.
  els.whyLink.href = `why.html?${new URLSearchParams({ emotion, strategy })}`;
}

export function tracksNote(text) {
  els.tracksFor.textContent = text;
}

function trackItem(track) {
  const li = element("li", { className: "track" });
  li.dataset.trackId = track.id;
  const title = element("p", { className: "track-title" },
    element("strong", { textContent: track.name }), ` — ${track.artists}`);
  const meta = element("p", { className: "track-meta",
    textContent: [track.album, track.reason].filter(Boolean).join(" · ") });
  const open = element("a", {
    href: `https://open.spotify.com/track/${encodeURIComponent(track.id)}`,
    target: "_blank", rel: "noopener", className: "button-link", textContent: "Open in Spotify",
  });
  open.setAttribute("aria-label", `Open ${track.name} in Spotify (new tab)`);
  const play = element("button", { type: "button", textContent: "Show player" });
  play.setAttribute("aria-expanded", "false");
  play.addEventListener("click", () => togglePlayer(li, track, play));
  li.append(title, meta, element("div", { className: "row" }, open, play));
  return li;
}

// The Spotify embed is loaded only when asked for: one at a time, nothing fetched before a click.
function togglePlayer(li, track, button) {
  const existing = li.querySelector("iframe");
  for (const other of els.tracks.querySelectorAll("iframe")) other.remove();
  for (const b of els.tracks.querySelectorAll("button[aria-expanded='true']")) {
    b.setAttribute("aria-expanded", "false");
    b.textContent = "Show player";
  }
  if (existing) return;
  const frame = element("iframe", {
    src: `https://open.spotify.com/embed/track/${encodeURIComponent(track.id)}`,
    title: `Spotify player: ${track.name}`, loading: "lazy", allow: "encrypted-media", className: "player",
  });
  li.append(frame);
  button.setAttribute("aria-expanded", "true");
  button.textContent = "Hide player";
}
