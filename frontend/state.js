// What the page knows, in one object, changed only through the functions below (which tracks show is
// tracks.js's to decide). render.js reads it; main.js calls these as things happen.

export const TIMELINE_MS = 30_000;

export const state = {
  emotions: [], // names in the model's order, from the gateway
  steadiness: null, // the gateway's rule, {window, votes}, which on-device mode runs here
  mode: null, // "ondevice" (faces read in this browser) | "server" (frames go to /analyze); null: not yet
  modeWhy: "", // why this mode, as the page says it
  engine: null, // the on-device engine once loaded (ondevice.js)
  colors: {}, // emotion -> CSS colour, the same in boxes, bars and the timeline
  session: crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2),
  stream: null,
  running: false, // the camera loop is on
  frames: 0, // camera frames answered since the camera started
  faceBoxes: null, // the last camera frame's faces[].box, or null
  lastResult: null,
  lastSource: null, // "camera" | "photo"
  history: [], // {t, emotion|null}, the last TIMELINE_MS of camera frames
  problems: {}, // key -> message shown in the alert area
};

export function setEmotions({ emotions, steadiness }) {
  state.emotions = emotions;
  state.steadiness = steadiness || null;
  state.colors = Object.fromEntries(
    emotions.map((e, i) => [e, `hsl(${Math.round((i * 360) / emotions.length)} 70% 50%)`]));
}

export function setProblem(key, message) {
  if (message) state.problems[key] = message;
  else delete state.problems[key];
}

export function setMode(mode, why) {
  state.mode = mode;
  state.modeWhy = why;
}

export function keepEngine(engine) {
  state.engine = engine;
}

export function cameraStarted(stream) {
  state.stream = stream;
  state.running = true;
  state.frames = 0;
  state.faceBoxes = null;
}

// The next frame is the new mode's first: it searches the whole picture.
export function modeChanged() {
  state.frames = 0;
  state.faceBoxes = null;
}

export function cameraStopped() {
  const stream = state.stream;
  state.running = false;
  state.stream = null;
  return stream;
}

// A camera frame's answer (null: none came), for the next frame's `boxes`.
export function frameAnswered(result) {
  state.frames += 1;
  state.faceBoxes = result && result.faces.length ? result.faces.map((f) => f.box) : null;
}

export function resultShown(result, source, now) {
  state.lastResult = result;
  state.lastSource = source;
  if (source !== "camera") return;
  state.history.push({ t: now, emotion: result.emotion });
  while (state.history.length && now - state.history[0].t > TIMELINE_MS) state.history.shift();
}

// The steady emotion of the last photo, if the last result was a photo's.
export function photoEmotion() {
  return state.lastSource === "photo" && state.lastResult ? state.lastResult.stable_emotion : null;
}
