// On-device mode's engine: the emotion service's own two ONNX graphs (services/emotion/graphs.py), run
// in this page by onnxruntime-web (WebAssembly with SIMD, one thread), so the frames never leave the
// device. The graphs hold the resize, crop, alignment, CNN and softmax; this module holds the few steps
// around them, ported from services/emotion/pipeline.py and detector.py and pinned to them by the shared
// vectors in tests/ondevice/vectors.json. analyze() answers what POST /predict answers.
//
//   const engine = await loadEngine();        // throws an Error that says why it cannot run here
//   const answer = await engine.analyze(video, { boxes: previous?.faces.map((f) => f.box) });

export const EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
const ALIGN = 32; // the detector input's sides are multiples of 32

// --- The steps around the graphs (pure functions: tests/ondevice/vectors.json pins them to Python's) ---

// Python's round(): halves go to the even neighbour.
export function roundHalfEven(v) {
  const r = Math.abs(v % 1) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v);
  return r + 0; // -0 as 0
}

// detector.input_size: (width, height) of the detector input for a window.
export function inputSize(width, height, maxSide) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return [
    Math.max(ALIGN, Math.ceil((width * scale) / ALIGN) * ALIGN),
    Math.max(ALIGN, Math.ceil((height * scale) / ALIGN) * ALIGN),
  ];
}

// settings.detect_side: small for a video frame, larger for a photo.
export function detectSide(p, width, height) {
  return Math.max(width, height) <= p.video_max_side ? p.detect_max_side : p.photo_detect_max_side;
}

// pipeline.region: where to look for the previous frame's faces ({window: [x, y, w, h], side}), or
// null to search the whole frame. Throws for a box outside the frame (the service answers 422).
export function region(p, width, height, hint) {
  let x0 = width;
  let y0 = height;
  let x1 = 0;
  let y1 = 0;
  for (const { x, y, w, h } of hint) {
    if (x + w <= 0 || y + h <= 0 || x >= width || y >= height) {
      throw new Error(`boxes: (${x}, ${y}, ${w}, ${h}) lies outside the ${width}x${height} image`);
    }
    const half = (Math.max(w, h) * p.track_scale) / 2;
    const cx = x + w / 2;
    const cy = y + h / 2;
    x0 = Math.min(x0, Math.trunc(cx - half));
    y0 = Math.min(y0, Math.trunc(cy - half));
    x1 = Math.max(x1, Math.ceil(cx + half));
    y1 = Math.max(y1, Math.ceil(cy + half));
  }
  x0 = Math.max(x0, 0);
  y0 = Math.max(y0, 0);
  x1 = Math.min(x1, width);
  y1 = Math.min(y1, height);
  const longest = Math.max(x1 - x0, y1 - y0);
  const smallest = Math.min(...hint.map(({ w, h }) => Math.max(w, h)));
  const side = Math.max(p.track_max_side, Math.ceil((longest * p.track_face_px) / smallest));
  if (Math.min(side, longest) >= Math.min(detectSide(p, width, height), Math.max(width, height))) {
    return null;
  }
  return { window: [x0, y0, x1 - x0, y1 - y0], side };
}

// pipeline.framed_window: the picture in a border of frame_retry x its longer side each way.
export function framedWindow(width, height, frameRetry) {
  if (frameRetry === 0) return null;
  const pad = frameRetry * Math.max(width, height);
  return [-pad, -pad, width + 2 * pad, height + 2 * pad];
}

// pipeline.median: the lower median grey level.
export function median(grey) {
  const counts = new Uint32Array(256);
  for (let i = 0; i < grey.length; i++) counts[grey[i]]++;
  const want = Math.floor((grey.length + 1) / 2);
  let seen = 0;
  for (let v = 0; v < 256; v++) {
    seen += counts[v];
    if (seen >= want) return v;
  }
  return 255;
}

// FaceDetector.__call__'s last step: the detect graph's rows [x, y, w, h, score, dx, dy] as faces,
// too-small ones dropped, largest first (a stable sort keeps the graph's order among equals).
export function detections(rows, minFacePx) {
  const found = [];
  for (const [x, y, w, h, score, dx, dy] of rows) {
    if (Math.min(w, h) >= minFacePx) {
      found.push({ x, y, w, h, score, roll: (Math.atan2(dy, dx) * 180) / Math.PI });
    }
  }
  return found.sort((a, b) => b.w * b.h - a.w * a.h);
}

// imaging.square_crop_box + pipeline.squares: the classify graph's [x0, y0, side, roll] for a face.
export function square(p, face) {
  const { x, y, w, h } = face;
  const side = Math.max(1, roundHalfEven(Math.max(w, h) * p.crop_margin));
  const cx = x + w / 2;
  const cy = y + h / 2 + p.crop_shift_y * h;
  const roll = p.align && Math.abs(face.roll) <= p.max_roll ? face.roll : 0;
  return [roundHalfEven(cx - side / 2), roundHalfEven(cy - side / 2), side, roll];
}

// Grey levels as Pillow's convert("L") makes them (ITU-R 601-2 luma, its integer arithmetic).
export function toGrey(rgba) {
  const n = rgba.length >> 2;
  const grey = new Uint8Array(n);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    grey[i] = (rgba[j] * 19595 + rgba[j + 1] * 38470 + rgba[j + 2] * 7471 + 0x8000) >> 16;
  }
  return grey;
}

// --- Loading ---

async function fetchChecked(url, sha256) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (sha256 && globalThis.crypto?.subtle) {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== sha256) throw new Error(`${url}: the content does not match its sha256`);
  }
  return bytes;
}

// Resolves to an engine, or throws an Error whose message says why on-device mode cannot run here.
// options.info: the URL of the gateway's on-device manifest (default /api/ondevice).
export async function loadEngine(options = {}) {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    throw new Error("this browser has no WebAssembly");
  }
  const response = await fetch(options.info ?? "/api/ondevice", { cache: "no-cache" });
  if (!response.ok) throw new Error(`the on-device manifest: HTTP ${response.status}`);
  const info = await response.json();
  if (!info.available) throw new Error(info.reason || "on-device mode is unavailable");
  let ort;
  try {
    ort = await import(info.runtime.module);
  } catch (err) {
    throw new Error(`onnxruntime-web did not load: ${err.message}`);
  }
  // One thread: more would need cross-origin isolation, which would block the Spotify player.
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = { wasm: info.runtime.wasm };
  const session = async (file) => {
    const bytes = await fetchChecked(file.url, file.sha256);
    try {
      return await ort.InferenceSession.create(bytes, {
        executionProviders: ["wasm"],
        graphOptimizationLevel: "all",
      });
    } catch (err) {
      throw new Error(`the model ${file.url} did not load: ${err.message ?? err}`);
    }
  };
  const [detect, classify] = await Promise.all([session(info.files.detect), session(info.files.classify)]);
  return new Engine(ort, detect, classify, info);
}

// --- The engine ---

class Engine {
  constructor(ort, detect, classify, info) {
    this.ort = ort;
    this.detectSession = detect;
    this.classifySession = classify;
    this.model = info.model;
    this.pipeline = info.pipeline;
    this.canvas = null;
  }

  // A grey frame (Uint8Array, width, height) from a video, canvas, ImageBitmap or ImageData;
  // maxWidth: scaled down to at most that width first (as the page's server mode sends frames).
  grey(source, maxWidth) {
    if (typeof ImageData !== "undefined" && source instanceof ImageData) {
      return { grey: toGrey(source.data), width: source.width, height: source.height };
    }
    const sw = source.videoWidth || source.naturalWidth || source.width;
    const sh = source.videoHeight || source.naturalHeight || source.height;
    if (!sw || !sh) throw new Error("the source has no picture yet");
    const scale = maxWidth && sw > maxWidth ? maxWidth / sw : 1;
    const width = Math.round(sw * scale);
    const height = Math.round(sh * scale);
    if (!this.canvas) {
      this.canvas =
        typeof OffscreenCanvas !== "undefined"
          ? new OffscreenCanvas(width, height)
          : document.createElement("canvas");
    }
    this.canvas.width = width;
    this.canvas.height = height;
    const ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(source, 0, 0, width, height);
    return { grey: toGrey(ctx.getImageData(0, 0, width, height).data), width, height };
  }

  async detect(frame, window, maxSide, fill = 0) {
    const { ort, pipeline: p } = this;
    const [inW, inH] = inputSize(window[2], window[3], maxSide);
    const out = await this.detectSession.run({
      frame: new ort.Tensor("uint8", frame.grey, [frame.height, frame.width]),
      window: new ort.Tensor("float32", Float32Array.from(window), [4]),
      size: new ort.Tensor("int64", BigInt64Array.from([BigInt(inH), BigInt(inW)]), [2]),
      fill: new ort.Tensor("float32", Float32Array.from([fill]), [1]),
    });
    const table = out.faces;
    const rows = [];
    for (let i = 0; i < table.dims[0]; i++) rows.push(Array.from(table.data.subarray(i * 7, i * 7 + 7)));
    return detections(rows, p.min_face_px);
  }

  // pipeline.boxes: faces (largest first) and the region searched (null: the whole frame).
  async boxes(frame, hint) {
    const p = this.pipeline;
    const { width, height } = frame;
    const where = hint && hint.length ? region(p, width, height, hint) : null;
    if (where) {
      const found = await this.detect(frame, where.window, where.side);
      if (found.length >= hint.length) return { found: found.slice(0, p.max_faces), region: where.window };
    }
    const side = detectSide(p, width, height);
    let found = await this.detect(frame, [0, 0, width, height], side);
    if (!found.length) {
      const framed = framedWindow(width, height, p.frame_retry);
      if (framed) found = await this.detect(frame, framed, Math.min(side, p.retry_side), median(frame.grey));
    }
    return { found: found.slice(0, p.max_faces), region: null };
  }

  async classify(frame, faces) {
    if (!faces.length) return [];
    const { ort, pipeline: p } = this;
    const squares = Float32Array.from(faces.flatMap((f) => square(p, f)));
    const out = await this.classifySession.run({
      frame: new ort.Tensor("uint8", frame.grey, [frame.height, frame.width]),
      squares: new ort.Tensor("float32", squares, [faces.length, 4]),
    });
    const probs = out.probabilities.data;
    return faces.map((_, i) => {
      const row = Array.from(probs.subarray(i * 7, i * 7 + 7));
      const sum = row.reduce((a, b) => a + b, 0);
      return row.map((v) => v / sum);
    });
  }

  // The same answer as POST /predict's JSON for this picture. options.boxes: the previous answer's
  // faces[].box (searches near them only); options.maxWidth: scale the picture down to that width first.
  async analyze(source, options = {}) {
    const t0 = performance.now();
    const frame = this.grey(source, options.maxWidth);
    const t1 = performance.now();
    const { found, region: searched } = await this.boxes(frame, options.boxes);
    const t2 = performance.now();
    const probabilities = await this.classify(frame, found);
    const t3 = performance.now();
    const faces = found.map((f, i) => {
      const row = probabilities[i];
      let best = 0;
      for (let k = 1; k < row.length; k++) if (row[k] > row[best]) best = k;
      return {
        box: { x: f.x, y: f.y, w: f.w, h: f.h },
        emotion: EMOTIONS[best],
        confidence: row[best],
        probabilities: Object.fromEntries(EMOTIONS.map((e, k) => [e, row[k]])),
      };
    });
    return {
      faces,
      width: frame.width,
      height: frame.height,
      model: this.model,
      region: searched ? { x: searched[0], y: searched[1], w: searched[2], h: searched[3] } : null,
      timings_ms: { decode: t1 - t0, detect: t2 - t1, classify: t3 - t2 },
    };
  }
}
