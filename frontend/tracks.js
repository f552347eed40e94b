// Which tracks the page shows: decided here, and only here.
//
// The list follows the emotion picked by hand; with none picked ("camera (auto)"), the camera's steady
// emotion while the camera runs (the gateway answers a frame with tracks when the steady emotion or the
// query changed, or when the frame asks "always"), else the last photo's. Every list comes from a
// request numbered here, a /recommend call or a frame that brought tracks; only the newest may draw,
// so a slow answer for an earlier choice never replaces a newer one.

import { photoEmotion, state } from "./state.js";

export const LIMIT = 10;

const choice = {
  picked: "", // "" = the camera decides
  strategy: "match",
  forceNext: true, // the next frame asks for tracks even if the steady emotion is unchanged
  latest: 0, // number of the newest request
};

export const picked = () => choice.picked;
export const strategy = () => choice.strategy;

// What a camera frame asks the gateway for.
export function frameRecommend() {
  if (choice.picked) return "never";
  return choice.forceNext ? "always" : "auto";
}

export const photoRecommend = () => (choice.picked ? "never" : "always");

// A photo read on this device: a /recommend call for its emotion to make, or null (one is picked).
export const photoRead = (emotion) => (choice.picked ? null : request(emotion, "photo"));

export function frameAnswered(recommend) {
  if (recommend === "always") choice.forceNext = false;
}

export function cameraStarted() {
  choice.forceNext = true;
}

// A /recommend call to make: {emotion, source, strategy, limit, number}.
function request(emotion, source) {
  return { emotion, source, strategy: choice.strategy, limit: LIMIT, number: ++choice.latest };
}

export const isNewest = (req) => req.number === choice.latest;

// The user picked an emotion ("" = back to the camera): a request to make, or null.
export function pick(emotion) {
  choice.picked = emotion;
  if (emotion) return request(emotion, "picked");
  choice.forceNext = true;
  const photo = photoEmotion();
  return photo ? request(photo, "photo") : null;
}

// The user picked a strategy: a request to make, or null. With the camera deciding, the next frame's
// query differs and the gateway sends new tracks with it.
export function pickStrategy(value) {
  choice.strategy = value;
  if (choice.picked) return request(choice.picked, "picked");
  const photo = photoEmotion();
  return photo ? request(photo, "photo") : null;
}

// Tracks that came with an /analyze answer: {tracks, emotion, source} to draw, or null.
export function fromAnswer(result, source) {
  if (!result.tracks_updated || choice.picked) return null;
  choice.latest += 1; // any /recommend still in flight is older than these
  return { tracks: result.tracks, emotion: result.stable_emotion, source };
}

// A note for an empty list, when nothing will fill it: null when tracks are coming or shown.
export function waitingNote() {
  return !choice.picked && !state.running && !photoEmotion() ? "Tracks follow the camera when it runs." : null;
}
