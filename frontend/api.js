// The gateway's HTTP API, and nothing else: no page state, no DOM. Each call answers with data or
// with a problem ({kind, detail}) the caller shows; none throws.

async function detail(response) {
  try {
    const body = await response.json();
    return body.detail || response.statusText;
  } catch {
    return response.statusText || `HTTP ${response.status}`;
  }
}

// A backend behind the gateway is down (the gateway answers 502/503 for it).
const isDown = (response) => response.status === 503 || response.status === 502;

async function call(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    return { problem: { kind: "unreachable", detail: err.message } };
  }
  if (response.ok) return { body: await response.json() };
  // A busy or recovering server says when to come back (503 + Retry-After, in seconds).
  const retryAfterS = Number.parseInt(response.headers.get("Retry-After") || "", 10);
  return {
    problem: {
      status: response.status,
      kind: isDown(response) ? "down" : "refused",
      detail: await detail(response),
      retryAfterMs: Number.isFinite(retryAfterS) && retryAfterS > 0 ? retryAfterS * 1000 : 0,
    },
  };
}

// {emotions: names in the model's order, strategies, steadiness: {window, votes}}; null while the
// gateway cannot be reached.
export async function emotions() {
  const { body } = await call("/api/emotions");
  return body || null;
}

// {emotion: "ok" | why not, recommender: ...}, or null.
export async function status() {
  const { body } = await call("/api/status");
  return body || null;
}

export function recommend({ emotion, strategy, limit }) {
  return call(`/recommend?${new URLSearchParams({ emotion, strategy, limit })}`);
}

// On-device mode: no image, the largest face's probabilities of the recent frames (frames: arrays in
// the emotions' order), when the steady emotion or the choice of tracks changed.
export function mood(frames, params, session) {
  return call(`/api/mood?${new URLSearchParams(params)}`, {
    method: "POST",
    body: JSON.stringify({ frames: frames.map((face) => ({ faces: [face] })) }),
    headers: { "Content-Type": "application/json", "X-Session-ID": session },
  });
}

// body: a raw image (with its Content-Type in headers) or a form with `image` (and `boxes`).
export function analyze(body, headers, params) {
  return call(`/analyze?${new URLSearchParams(params)}`, { method: "POST", body, headers });
}

// ---------- Save to Spotify (the gateway talks to Spotify; the page never sees a token) ----------

const json = (method, body) => ({
  method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
});

// {enabled, connected, scopes, last_playlist}, or null while the gateway cannot be reached.
export async function spotifyStatus() {
  const { body } = await call("/api/spotify");
  return body || null;
}

// {authorize_url}: Spotify's consent page.
export const spotifyConnect = (wantPublic) => call("/api/spotify/connect", json("POST", { public: wantPublic }));

// list: {tracks, emotion, strategy, public, append} -> {id, name, url, added, already_there}.
export const spotifySave = (list) => call("/api/spotify/save", json("POST", list));

export const spotifyDisconnect = () => call("/api/spotify", { method: "DELETE" });
