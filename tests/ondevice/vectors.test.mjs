// The shared vectors (tests/ondevice/vectors.json, made by tests/ondevice/vectors.py from the Python
// code) through frontend/ondevice.js: `node --test tests/ondevice/` (test_vectors.py runs it).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  detections,
  framedWindow,
  inputSize,
  median,
  region,
  roundHalfEven,
  square,
  toGrey,
} from "../../frontend/ondevice.js";

const cases = JSON.parse(readFileSync(new URL("./vectors.json", import.meta.url)));
const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

test("Python's round()", () => {
  for (const c of cases.round) assert.equal(roundHalfEven(c.in), c.out, `round(${c.in})`);
});

test("the detector input size", () => {
  for (const c of cases.input_size) assert.deepEqual(inputSize(...c.in), c.out, JSON.stringify(c.in));
});

test("the tracking region", () => {
  for (const c of cases.region) {
    const [width, height, hint] = c.in;
    if (c.out && c.out.error) {
      assert.throws(() => region(c.pipeline, width, height, hint), { message: c.out.error });
    } else {
      assert.deepEqual(region(c.pipeline, width, height, hint), c.out, JSON.stringify(c.in));
    }
  }
});

test("the framed retry's window", () => {
  for (const c of cases.framed) assert.deepEqual(framedWindow(...c.in), c.out, JSON.stringify(c.in));
});

test("the median grey", () => {
  for (const c of cases.median) assert.equal(median(Uint8Array.from(c.in)), c.out);
});

test("the detect graph's rows as faces", () => {
  for (const c of cases.detections) {
    const got = detections(...c.in);
    assert.equal(got.length, c.out.length);
    got.forEach((face, i) => {
      const want = c.out[i];
      for (const k of ["x", "y", "w", "h", "score"]) assert.equal(face[k], want[k], `${k} of face ${i}`);
      assert.ok(close(face.roll, want.roll), `roll ${face.roll} vs ${want.roll}`);
    });
  }
});

test("the crop squares", () => {
  for (const c of cases.square) {
    const got = square(c.pipeline, c.in);
    assert.deepEqual(got.slice(0, 3), c.out.slice(0, 3), JSON.stringify(c.in));
    assert.ok(close(got[3], c.out[3]));
  }
});

test("grey levels as Pillow's convert('L')", () => {
  for (const c of cases.grey) assert.deepEqual(Array.from(toGrey(Uint8Array.from(c.in))), c.out);
});
