// The steady emotion, as the gateway keeps it (services/gateway/steadiness.py): the page in on-device
// mode runs the same rule on every frame and tells the gateway only when its steady emotion changes.
// tests/vectors/steadiness.json holds both to the same answers.

// The most probable emotion of one face's probabilities (in `emotions` order); a tie goes to the first.
export function topEmotion(probabilities, emotions) {
  let best = 0;
  for (let i = 1; i < emotions.length; i += 1) if (probabilities[i] > probabilities[best]) best = i;
  return emotions[best];
}

export class Steadiness {
  // A new emotion becomes the stable one when it holds `votes` of the last `window` frames with a face.
  constructor(window, votes) {
    if (!(votes >= 1 && votes <= window)) throw new Error("need 1 <= votes <= window");
    this.window = window;
    this.votes = votes;
    this.recent = [];
    this.stable = null;
  }

  // One frame's emotion (null: no face, which changes nothing); returns the stable one.
  observe(emotion) {
    if (emotion === null) return this.stable;
    this.recent.push(emotion);
    if (this.recent.length > this.window) this.recent.shift();
    const count = this.recent.filter((e) => e === emotion).length;
    if (this.stable === null || count >= this.votes) this.stable = emotion;
    return this.stable;
  }
}
