// "Why these songs": draws GET /recommend/map (the list on the valence-energy plane, its regions and the
// catalog's density) as SVG. An ES module with no inline script or style, so it runs under a strict CSP.

const SVG = "http://www.w3.org/2000/svg";
const SIZE = 400;       // plot area in SVG units; the axes take the margin
const MARGIN = 36;
const COLOURS = ["#4ea1ff", "#8fb8ff", "#ffc46b", "#ff9f40"];  // waypoints, start to goal

const $ = (id) => document.getElementById(id);
const x = (valence) => MARGIN + valence * SIZE;
const y = (energy) => MARGIN + (1 - energy) * SIZE;

function node(name, attributes, text) {
  const el = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

function colour(stage, stages) {
  return COLOURS[stages === 1 ? 0 : Math.round((stage / (stages - 1)) * (COLOURS.length - 1))];
}

export function draw(svg, map) {
  const cell = SIZE / map.bins;
  const peak = Math.log1p(Math.max(1, ...map.density.flat()));
  const parts = [];
  map.density.forEach((row, i) => row.forEach((count, j) => {
    if (!count) return;
    parts.push(node("rect", {
      x: MARGIN + j * cell, y: MARGIN + SIZE - (i + 1) * cell, width: cell, height: cell,
      fill: "#8a8f99", "fill-opacity": (0.08 + 0.8 * Math.log1p(count) / peak).toFixed(3),
    }));
  }));
  map.regions.forEach((r, stage) => parts.push(node("rect", {
    class: "map-region", x: x(r.valence[0]), y: y(r.energy[1]),
    width: (r.valence[1] - r.valence[0]) * SIZE, height: (r.energy[1] - r.energy[0]) * SIZE,
    stroke: colour(stage, map.regions.length), "stroke-dasharray": stage ? "6 4" : "none",
  })));
  map.tracks.forEach((t, n) => {
    const group = node("g", {});
    group.append(
      node("title", {}, `${n + 1}. ${t.name} (${t.artists}): ${t.reason}`),
      node("circle", { class: "map-track", cx: x(t.valence), cy: y(t.energy), r: 8,
                       fill: colour(t.stage, map.regions.length) }),
      node("text", { class: "map-label", x: x(t.valence), y: y(t.energy) }, String(n + 1)),
    );
    parts.push(group);
  });
  parts.push(
    node("line", { x1: MARGIN, y1: MARGIN + SIZE, x2: MARGIN + SIZE, y2: MARGIN + SIZE, stroke: "#a3a9b4" }),
    node("line", { x1: MARGIN, y1: MARGIN, x2: MARGIN, y2: MARGIN + SIZE, stroke: "#a3a9b4" }),
    node("text", { class: "map-axis", x: MARGIN + SIZE / 2, y: MARGIN + SIZE + 26, "text-anchor": "middle" },
         "valence: dark → bright"),
    node("text", { class: "map-axis", x: 12, y: MARGIN + SIZE / 2, "text-anchor": "middle",
                   transform: `rotate(-90 12 ${MARGIN + SIZE / 2})` }, "energy: calm → intense"),
  );
  svg.replaceChildren(...parts);
}

function listTracks(list, map) {
  list.replaceChildren(...map.tracks.map((t) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `https://open.spotify.com/track/${t.id}`;
    link.rel = "noopener";
    link.target = "_blank";
    link.textContent = `${t.name} — ${t.artists}`;
    const why = document.createElement("span");
    why.className = "reason";
    why.textContent = t.reason;
    li.append(link, why);
    return li;
  }));
}

async function show() {
  const emotion = $("why-emotion").value;
  const strategy = $("why-strategy").value;
  const status = $("why-status");
  status.textContent = "Loading…";
  history.replaceState(null, "", `?${new URLSearchParams({ emotion, strategy })}`);
  try {
    const response = await fetch(`/recommend/map?${new URLSearchParams({ emotion, strategy })}`);
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || response.statusText);
    draw($("why-map"), body);
    listTracks($("why-tracks"), body);
    status.textContent = `${body.tracks.length} songs for “${emotion}” (${strategy}).`;
  } catch (err) {
    status.textContent = `The map could not be fetched: ${err.message}`;
  }
}

const query = new URLSearchParams(location.search);
for (const [name, id] of [["emotion", "why-emotion"], ["strategy", "why-strategy"]]) {
  const value = query.get(name);
  if (value && [...$(id).options].some((o) => o.value === value)) $(id).value = value;
  $(id).addEventListener("change", show);
}
show();
