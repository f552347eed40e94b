// On-device mode's side of the steady emotion: every frame read in this browser goes through the
// gateway's steadiness rule here (steadiness.js), and the gateway hears only when the steady emotion or
// the choice of tracks changed: the largest face's probabilities of the last frames, no image
// (POST /api/mood). The gateway derives the steady emotion from them itself, and its answer is kept.

import { Steadiness, topEmotion } from "./steadiness.js";
import { state } from "./state.js";

let steady = null;
let recent = []; // the largest face's probabilities (emotions' order) of the last frames with a face
let told = null; // what the gateway last answered with tracks for: "emotion|strategy|limit"

// Sent rounded: 4 decimals are far finer than the model's certainty, and keep the request small.
const round = (p) => Math.round(p * 1e4) / 1e4;

export function start() {
  steady = new Steadiness(state.steadiness.window, state.steadiness.votes);
  recent = [];
  told = null;
}

// A frame's result read on this device: {emotion of the largest face (null: none), stable emotion}.
export function observe(result) {
  const face = result.faces[0];
  if (!face) return { emotion: null, stable: steady.stable };
  const probabilities = state.emotions.map((e) => round(face.probabilities[e] || 0));
  recent.push(probabilities);
  if (recent.length > steady.window) recent.shift();
  const emotion = topEmotion(probabilities, state.emotions);
  return { emotion, stable: steady.observe(emotion) };
}

const key = (emotion, params) => `${emotion}|${params.strategy}|${params.limit}`;

// The frames to post for these track options, or null when the gateway has nothing new to hear.
export function due(params) {
  if (params.recommend === "never" || steady.stable === null) return null;
  if (params.recommend !== "always" && told === key(steady.stable, params)) return null;
  return recent.slice();
}

// The gateway's answer: its steady emotion is the one kept (it derived it from the same frames). Tracks
// that did not come (recommender down) leave the change untold, to be posted again.
export function answered(answer, params) {
  steady.stable = answer.stable_emotion;
  told = answer.tracks_updated || !answer.recommender_error ? key(answer.stable_emotion, params) : null;
}
