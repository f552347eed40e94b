// moodtunes page: webcam frames read in this browser (on-device mode: ondevice.js, and POST /api/mood
// when the steady emotion changes) or sent to POST /analyze (server mode); boxes and labels over the
// video, tracks. ES modules, no build step: camera.js (the webcam), mode.js (which mode), mood.js
// (on-device mode's steady emotion), api.js (the gateway), state.js (what the page knows), tracks.js
// (which tracks show), render.js (the DOM); this file wires them to the user's actions. Every emotion
// name comes from GET /api/emotions.

import * as api from "./api.js";
import * as camera from "./camera.js";
import * as modes from "./mode.js";
import * as mood from "./mood.js";
import * as render from "./render.js";
import * as spotify from "./spotify.js";
import { els } from "./render.js";
import * as page from "./state.js";
import { state } from "./state.js";
import * as tracks from "./tracks.js";

const FRAME_INTERVAL_MS = 300;
const RETRY_MS = 2000;
// On-device mode: while the recommender is down, a steady emotion's tracks are asked for again this
// often (the gateway limits a session's mood updates, GATEWAY_MOOD_RATE_REQUESTS a minute).
const MOOD_RETRY_MS = 5000;
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

// ---------- server mode: frames to POST /analyze ----------

// One request at a time: the next frame leaves only after the previous answer came back. The answer
// (null: none came), and how long a refusing server asked us to wait.
async function serverFrame(blob) {
  const recommend = tracks.frameRecommend();
  const params = { recommend, strategy: tracks.strategy(), limit: tracks.LIMIT, session: state.session };
  const answer = await analyze(...frameBody(blob), params);
  if (answer.result) tracks.frameAnswered(recommend);
  return answer;
}

// ---------- on-device mode: frames read here, the gateway told of changes ----------

const told = { inFlight: false, notBefore: 0 };

// Tells the gateway of a new steady emotion or choice of tracks, one request at a time, not before a
// refusing server asked (Retry-After); the frames go on meanwhile.
async function tellGateway() {
  const params = { recommend: tracks.frameRecommend(), strategy: tracks.strategy(), limit: tracks.LIMIT };
  const frames = told.inFlight || performance.now() < told.notBefore ? null : mood.due(params);
  if (!frames || state.mode !== "ondevice") return;
  told.inFlight = true;
  const { body, problem: p } = await api.mood(frames, params, state.session);
  told.inFlight = false;
  if (!body) {
    told.notBefore = performance.now() + Math.max(RETRY_MS, p.retryAfterMs);
    if (p.kind === "unreachable") problem("gateway", `The moodtunes server cannot be reached (${p.detail}).`);
    else problem("gateway", `The server did not take the mood update: ${p.detail}`);
    return;
  }
  problem("gateway", null);
  mood.answered(body, params);
  tracks.frameAnswered(params.recommend);
  if (body.recommender_error) {
    recommenderProblem(body.recommender_error);
    told.notBefore = performance.now() + MOOD_RETRY_MS;
  }
  if (body.tracks_updated) recommenderProblem(null);
  const list = tracks.fromAnswer(body, "camera");
  if (list) render.tracks(list.tracks, list.emotion, list.source, tracks.strategy());
}

// A picture read by the on-device engine, as /analyze answers it (no tracks: those come from
// tellGateway or /recommend); null when the engine failed, which puts the page in server mode.
async function readHere(source, options) {
  try {
    return await state.engine.analyze(source, options);
  } catch (err) {
    await useServer(`the on-device engine failed: ${err.message}`);
    return null;
  }
}

async function deviceFrame() {
  const boxes = state.faceBoxes && state.frames % FULL_SCAN_EVERY !== 0 ? state.faceBoxes : null;
  const read = await readHere(els.video, { boxes, maxWidth: camera.FRAME_MAX_WIDTH });
  if (!read) return { result: null, retryAfterMs: 0 };
  const { stable } = mood.observe(read);
  const emotion = read.faces.length ? read.faces[0].emotion : null;
  const result = { ...read, emotion, stable_emotion: stable, tracks: [], tracks_updated: false };
  tellGateway();
  return { result, retryAfterMs: 0 };
}

async function cameraLoop() {
  while (state.running) {
    const started = performance.now();
    // A hidden tab reads no frame: no one is looking (and in server mode the server has other faces to
    // read). Nor does a page that has not chosen its mode yet (it is loading the on-device models).
    const ondevice = state.mode === "ondevice";
    const blob = document.hidden || state.mode !== "server" ? null : await camera.frame(els.video);
    const ready = !document.hidden && els.video.videoWidth > 0;
    let ok = true;
    let retryAfterMs = 0;
    if (blob || (ondevice && ready)) {
      const answer = ondevice ? await deviceFrame() : await serverFrame(blob);
      const result = answer.result;
      retryAfterMs = answer.retryAfterMs;
      page.frameAnswered(result);
      ok = result !== null;
      if (result && state.running) {
        showResult(result, "camera");
        render.status(result.faces.length ? "Watching: camera on." : "Camera on — no face in view.");
      } else if (!result && state.mode === "server") {
        render.status("Camera on — waiting for the emotion service.");
      }
    }
    // A server that sheds load gets no frame before the time it asked for (Retry-After).
    const wait = ok ? FRAME_INTERVAL_MS - (performance.now() - started) : Math.max(RETRY_MS, retryAfterMs);
    await sleep(Math.max(0, wait));
  }
}

// ---------- the mode ----------

let turn = 0; // counts changes of mode: an engine that finishes loading after a later change does not switch

async function useServer(why) {
  turn += 1;
  page.setMode("server", why);
  render.mode();
  problem("gateway", null);
  await checkServices();
}

// On-device mode once its engine loads (once), else server mode saying why. Until then frames go where
// they went before (nowhere on a first visit); the user may choose server mode meanwhile.
async function useOnDevice(why) {
  const mine = ++turn;
  if (!state.steadiness) {
    await useServer("on-device mode could not start: the server did not say its steadiness rule");
    return;
  }
  render.modeLoading();
  let engine;
  try {
    engine = state.engine || (await modes.loadEngine());
  } catch (err) {
    if (mine === turn) await useServer(`on-device mode could not start: ${err.message}`);
    return;
  }
  page.keepEngine(engine);
  if (mine !== turn) return;
  mood.start();
  page.setMode("ondevice", why || "this browser can run the models");
  render.mode();
  await checkServices();
}

async function chooseMode() {
  const { mode, why } = modes.wanted();
  if (mode === "server") await useServer(why);
  else await useOnDevice(why);
}

async function toggleMode() {
  const next = els.modeToggle.dataset.next;
  modes.remember(next);
  page.modeChanged();
  tracks.cameraStarted(); // the new mode's first answer brings tracks
  if (next === "server") await useServer("your choice, remembered by this browser");
  else await useOnDevice("your choice, remembered by this browser");
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
  let result;
  if (state.mode === "ondevice") {
    // Read here: the photo does not leave this device either; tracks come from /recommend.
    const bitmap = await createImageBitmap(file).catch(() => null);
    const read = bitmap && (await readHere(bitmap, { maxWidth: camera.photoWidth(bitmap) }));
    if (read) {
      const face = read.faces[0];
      const emotion = face ? face.emotion : null;
      result = { ...read, emotion, stable_emotion: emotion, tracks: [], tracks_updated: false };
    }
  } else {
    const form = new FormData();
    form.append("image", await camera.shrinkPhoto(file), file.name);
    const params = { recommend: tracks.photoRecommend(), strategy: tracks.strategy(), limit: tracks.LIMIT };
    result = (await analyze(form, {}, params)).result;
  }
  if (!result) {
    render.status("The photo could not be analysed.");
    return;
  }
  showResult(result, "photo");
  if (state.mode === "ondevice" && result.emotion) fetchTracks(tracks.photoRead(result.emotion));
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
  // On-device mode does not use the emotion service.
  const emotion = status.emotion === "ok" || state.mode === "ondevice" ? null : status.emotion;
  emotionProblem(emotion && { kind: "down", detail: emotion });
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
  els.modeToggle.addEventListener("click", toggleMode);
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
  chooseMode(); // the camera opens meanwhile; its frames wait for the mode
  await startCamera();
}

main();
