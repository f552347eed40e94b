// Where faces are read: "ondevice" (this browser runs the models, ondevice.js; frames never leave it)
// or "server" (frames go to POST /analyze). On-device where the browser can run it, unless the address
// (?mode=server or ?mode=ondevice) or the user's choice on the page, remembered here, says otherwise.

const KEY = "moodtunes.mode";
// A first visit downloads several MB; past this something is wrong (the user may choose server mode
// sooner: the page offers it while loading).
const LOAD_TIMEOUT_MS = 180_000;
export const MODES = ["ondevice", "server"];

function saved() {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null; // storage blocked: nothing remembered
  }
}

export function remember(mode) {
  try {
    localStorage.setItem(KEY, mode);
  } catch {
    // storage blocked: the choice lasts this visit
  }
}

// {mode: "ondevice" | "server", why: who asked for it, or "" when nobody did}
export function wanted() {
  const param = new URLSearchParams(window.location.search).get("mode");
  if (MODES.includes(param)) return { mode: param, why: `?mode=${param} in the address` };
  const choice = saved();
  if (MODES.includes(choice)) return { mode: choice, why: "your choice, remembered by this browser" };
  return { mode: "ondevice", why: "" };
}

// The on-device engine; throws an Error whose message says why this browser cannot have one.
export async function loadEngine() {
  if (typeof WebAssembly !== "object") throw new Error("this browser does not run WebAssembly");
  let timer;
  const late = new Promise((_, reject) => {
    const why = new Error("the models took over three minutes to load");
    timer = setTimeout(() => reject(why), LOAD_TIMEOUT_MS);
  });
  try {
    // Loaded only when wanted: a browser in server mode fetches neither the runtime nor the models.
    const ondevice = await import("./ondevice.js");
    return await Promise.race([ondevice.loadEngine({}), late]);
  } finally {
    clearTimeout(timer);
  }
}
