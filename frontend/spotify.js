// Save to Spotify: the list shown becomes a playlist in the listener's Spotify account.
// The gateway runs the authorization (Authorization Code with PKCE) and the Web API calls; this page
// only sends the listener to Spotify's consent page and back, and never holds a token. The list being
// saved waits in sessionStorage (track ids, no secret) while the listener is at Spotify, and is saved
// when they come back. Without a client id on the server the section stays hidden.

import * as api from "./api.js";

const $ = (id) => document.getElementById(id);
const els = {
  section: $("spotify"), save: $("spotify-save"), isPublic: $("spotify-public"),
  appendLabel: $("spotify-append-label"), append: $("spotify-append"),
  disconnect: $("spotify-disconnect"), message: $("spotify-message"),
};
const PENDING = "moodtunes.spotify.pending";
const SCOPE = { true: "playlist-modify-public", false: "playlist-modify-private" };
// What Spotify's redirect back (?spotify=...) means, when it is not "connected".
const OUTCOMES = {
  denied: "You did not allow moodtunes to create playlists in your Spotify account, so nothing was saved.",
  refused: "Spotify's answer did not belong to this page's request, so it was refused and nothing was saved. " +
    "Try again.",
  expired: "That Spotify sign-in started in another tab or took too long. Nothing was saved: try again.",
  failed: "Spotify did not confirm the connection. Nothing was saved: try again.",
};

const status = { connected: false, scopes: [] };

function say(text, link) {
  els.message.replaceChildren(text);
  if (link) {
    const a = Object.assign(document.createElement("a"), {
      href: link.url, target: "_blank", rel: "noopener", textContent: link.text, id: "spotify-link",
    });
    els.message.append(" ", a);
  }
}

function show(next) {
  Object.assign(status, next);
  els.disconnect.hidden = !status.connected;
  els.appendLabel.hidden = !(status.connected && next.last_playlist);
}

// The list on the page now: exactly the tracks shown, in order, with what they were picked for.
function shownList() {
  const tracks = [...document.querySelectorAll("#tracks li[data-track-id]")].map((li) => li.dataset.trackId);
  const { emotion, strategy } = $("tracks-for").dataset;
  return tracks.length && emotion ? { tracks, emotion, strategy: strategy || "match" } : null;
}

async function connect(list) {
  sessionStorage.setItem(PENDING, JSON.stringify(list));
  say("Opening Spotify…");
  const { body, problem } = await api.spotifyConnect(list.public);
  if (problem) {
    sessionStorage.removeItem(PENDING);
    say(`Spotify cannot be connected: ${problem.detail}`);
    return;
  }
  window.location.assign(body.authorize_url);
}

async function save(list) {
  els.save.disabled = true;
  say(`Saving ${list.tracks.length} tracks to Spotify…`);
  const { body, problem } = await api.spotifySave(list);
  els.save.disabled = false;
  if (body) {
    sessionStorage.removeItem(PENDING);
    show({ last_playlist: { name: body.name, url: body.url } });
    const what = body.added ? `${body.added} tracks saved` : "Already saved, nothing added";
    const kept = body.already_there && body.added ? ` (${body.already_there} were there already)` : "";
    say(`${what} to “${body.name}”${kept}.`, { url: body.url, text: "Open the playlist in Spotify" });
  } else if (problem.status === 401) {
    // Not connected (or no longer): the next press connects, and the list is kept for it.
    show({ connected: false, scopes: [] });
    say(`${problem.detail}. Press “Save to Spotify” to connect; your list is kept.`);
  } else if (problem.retryAfterMs) {
    say(`${problem.detail}.`);
  } else {
    say(`Not saved: ${problem.detail}. Press “Save to Spotify” again: nothing is saved twice.`);
  }
}

function onSave() {
  const list = shownList();
  if (!list) {
    say("There are no tracks to save yet.");
    return;
  }
  const wanted = { ...list, public: els.isPublic.checked, append: !els.appendLabel.hidden && els.append.checked };
  if (status.connected && status.scopes.includes(SCOPE[wanted.public])) save(wanted);
  else connect(wanted);
}

async function onDisconnect() {
  const { problem } = await api.spotifyDisconnect();
  if (problem) {
    say(`Could not disconnect: ${problem.detail}`);
    return;
  }
  show({ connected: false, scopes: [], last_playlist: null });
  say("Disconnected: moodtunes no longer holds any Spotify access for you.");
}

// Back from Spotify's consent page: ?spotify=<outcome> says how it went.
function returned() {
  const params = new URLSearchParams(window.location.search);
  const outcome = params.get("spotify");
  if (!outcome) return null;
  params.delete("spotify");
  const rest = params.toString();
  window.history.replaceState(null, "", `${window.location.pathname}${rest ? `?${rest}` : ""}`);
  return outcome;
}

export async function start() {
  const outcome = returned();
  const found = await api.spotifyStatus();
  if (!found || !found.enabled) return;
  els.section.hidden = false;
  show(found);
  els.save.addEventListener("click", onSave);
  els.disconnect.addEventListener("click", onDisconnect);
  const pending = sessionStorage.getItem(PENDING);
  if (outcome === "connected" && pending) {
    save(JSON.parse(pending));
  } else if (outcome === "connected") {
    say("Connected to Spotify.");
  } else if (outcome) {
    sessionStorage.removeItem(PENDING);
    say(OUTCOMES[outcome] || "Spotify did not connect. Nothing was saved.");
  }
}
