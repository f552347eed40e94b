// moodtunes page: webcam frames -> POST /analyze, boxes and labels over the video, tracks.
// ES modules, no build step: camera.js (the webcam), api.js (the gateway), state.js (what the page
// knows), tracks.js (which tracks show), render.js (the DOM); this file wires them to the user's
// actions. Every emotion name comes from GET /api/emotions.

import * as api from "./api.js";
import * as camera from "./camera.js";
import * as render from "./render.js";
import * as spotify from "./spotify.js";
import { els } from "./render.js";
import * as page from "./state.js";
import { state } from "./state.js";
import * as tracks from "./tracks.js";

const FRAME_INTERVAL_MS = 300;
const RETRY_MS = 2000;
// Frames carry the previous frame's face boxes so the service searches only around them (much less
// work); every FULL_SCAN_EVERY-th frame searches the whole picture so newcomers are found.
const FULL_SCAN_EVERY = 5;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function problem(key, message) {
  page.setProblem(key, message);
  render.problems();
}

function recommenderProblem(detail) {
  problem("recommender", detail
    ? `Recommender is down — emotions still work, tracks cannot be updated. (${detail})` : null);
}

function emotionProblem(p) {
  if (!p) problem("emotion", null);
  else if (p.kind === "unreachable") problem("emotion", `The moodtunes server cannot be reached (${p.detail}).`);
  else if (p.kind === "down") {
    problem("emotion", `Emotion service is down — no faces can be read right now. (${p.detail})`);
  } else problem("emotion", `The image was refused: ${p.detail}`);
}

// ---------- tracks ----------

async function fetchTracks(req) {
  if (!req) {
    const note = tracks.waitingNote();
    if (note) render.tracksNote(note);
    return;
  }
  const { body, problem: p } = await api.recommend(req);
  if (!tracks.isNewest(req)) return;
  if (body) {
    recommenderProblem(null);
    render.tracks(body.tracks, req.emotion, req.source, req.strategy);
  } else if (p.kind === "refused") {
    problem("recommender", `Tracks could not be fetched: ${p.detail}`);
  } else {
    recommenderProblem(p.kind === "down" ? p.detail : `the server cannot be reached (${p.detail})`);
  }
}

function pickEmotion(emotion) {
  render.pressed(els.emotionPicker, "data-emotion", emotion);
  fetchTracks(tracks.pick(emotion));
}

function pickStrategy(strategy) {
  render.pressed(els.strategyPicker, "data-strategy", strategy);
  const req = tracks.pickStrategy(strategy);
  if (req) fetchTracks(req);
}

// ---------- results ----------

function showResult(result, source) {
  page.resultShown(result, source, performance.now());
  problem("emotion", null);
  render.result(result, source, FRAME_INTERVAL_MS);
  if (result.recommender_error) recommenderProblem(result.recommender_error);
  if (result.tracks_updated) recommenderProblem(null);
  const list = tracks.fromAnswer(result, source);
  if (list) render.tracks(list.tracks, list.emotion, list.source, tracks.strategy());
}

// The answer (null: none came), and how long a refusing server asked us to wait (Retry-After).
async function analyze(body, headers, params) {
  const { body: result, problem: p } = await api.analyze(body, headers, params);
  if (p) emotionProblem(p);
  return { result: result || null, retryAfterMs: p ? p.retryAfterMs : 0 };
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
    const blob = document.hidden ? null : await camera.frame(els.video);
    let ok = true;
    let retryAfterMs = 0;
    if (blob) {
      const recommend = tracks.frameRecommend();
      const params = { recommend, strategy: tracks.strategy(), limit: tracks.LIMIT, session: state.session };
      const answer = await analyze(...frameBody(blob), params);
      const result = answer.result;
      retryAfterMs = answer.retryAfterMs;
      page.frameAnswered(result);
      ok = result !== null;
      if (result && state.running) {
        tracks.frameAnswered(recommend);
        showResult(result, "camera");
        render.status(result.faces.length ? "Watching: camera on." : "Camera on — no face in view.");
      } else if (!result) {
        render.status("Camera on — waiting for the emotion service.");
      }
    }
    // A server that sheds load gets no frame before the time it asked for (Retry-After).
    const wait = ok ? FRAME_INTERVAL_MS - (performance.now() - started) : Math.max(RETRY_MS, retryAfterMs);
    await sleep(Math.max(0, wait));
  }
}

// ---------- camera and photo ----------

async function startCamera() {
  render.stageMessage("Asking for the camera…");
  let stream;
  try {
    stream = await camera.open();
  } catch (err) {
    problem("camera", err.message);
    render.cameraProblem(err.message, err.kind);
    render.status(err.message);
    return;
  }
  problem("camera", null);
  render.showCamera(stream);
  await els.video.play().catch(() => {});
  render.stageMessage("");
  els.cameraToggle.textContent = "Stop camera";
  page.cameraStarted(stream);
  tracks.cameraStarted();
  render.status("Camera on.");
  cameraLoop();
}

function stopCamera() {
  camera.close(page.cameraStopped());
  render.cameraOff();
  render.status("Camera off.");
}

async function analysePhoto(file) {
  if (state.running) stopCamera();
  render.status(`Analysing ${file.name}…`);
  render.showPhoto(URL.createObjectURL(file));
  await els.photo.decode().catch(() => {});
  const form = new FormData();
  form.append("image", await camera.shrinkPhoto(file), file.name);
  const params = { recommend: tracks.photoRecommend(), strategy: tracks.strategy(), limit: tracks.LIMIT };
  const { result } = await analyze(form, {}, params);
  if (!result) {
    render.status("The photo could not be analysed.");
    return;
  }
  showResult(result, "photo");
  render.status(result.faces.length ? `Photo: ${result.faces.length} face(s).` : "No face found in the photo.");
}

// ---------- start ----------

async function loadEmotions() {
  for (;;) {
    const emotions = await api.emotions();
    if (emotions) return emotions;
    // The gateway is restarting: retry.
    problem("gateway", "The moodtunes server cannot be reached. Retrying…");
    await sleep(RETRY_MS);
  }
}

async function checkServices() {
  const status = await api.status();
  if (!status) return; // /analyze reports it
  emotionProblem(status.emotion === "ok" ? null : { kind: "down", detail: status.emotion });
  recommenderProblem(status.recommender === "ok" ? null : status.recommender);
}

async function main() {
  page.setEmotions(await loadEmotions());
  problem("gateway", null);
  render.pickers();
  els.emotionPicker.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-emotion]");
    if (button) pickEmotion(button.dataset.emotion);
  });
  els.strategyPicker.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-strategy]");
    if (button) pickStrategy(button.dataset.strategy);
  });
  els.cameraToggle.addEventListener("click", () => (state.running ? stopCamera() : startCamera()));
  els.photoButton.addEventListener("click", () => els.photoInput.click());
  els.photoInput.addEventListener("change", () => {
    const file = els.photoInput.files[0];
    if (file) analysePhoto(file);
    els.photoInput.value = "";
  });
  window.addEventListener("resize", () => {
    if (state.lastResult) render.boxes(state.lastResult, state.lastSource === "camera");
  });
  spotify.start();
  await checkServices();
  await startCamera();
}

main();
