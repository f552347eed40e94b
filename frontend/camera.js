// The webcam and pictures in the browser: opening and closing the camera, grabbing a frame, shrinking
// a photo. No page state, no server.

export const FRAME_MAX_WIDTH = 640;
const PHOTO_MAX_SIDE = 1600;
const PHOTO_MAX_BYTES = 2 * 1024 * 1024;

// Why the camera could not start, as the page says it: kind is "denied" or "no-camera".
export class CameraError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

// The user's camera stream; throws CameraError.
export async function open() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new CameraError("no-camera", "This browser gives no camera access here (it needs https or " +
      "localhost). Analyse a photo instead.");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false,
    });
  } catch (err) {
    if (err.name === "NotAllowedError" || err.name === "SecurityError") {
      throw new CameraError("denied",
        "Camera permission was denied. Allow it in the browser, or analyse a photo instead.");
    }
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      throw new CameraError("no-camera", "No camera was found. Analyse a photo instead.");
    }
    throw new CameraError("no-camera",
      `The camera could not start (${err.name}: ${err.message}). Analyse a photo instead.`);
  }
}

export function close(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

const frameCanvas = document.createElement("canvas");

// The video's current picture as a JPEG, at most FRAME_MAX_WIDTH wide; null before the first frame.
export function frame(video) {
  if (!video.videoWidth) return Promise.resolve(null);
  const scale = Math.min(1, FRAME_MAX_WIDTH / video.videoWidth);
  frameCanvas.width = Math.round(video.videoWidth * scale);
  frameCanvas.height = Math.round(video.videoHeight * scale);
  frameCanvas.getContext("2d").drawImage(video, 0, 0, frameCanvas.width, frameCanvas.height);
  return new Promise((resolve) => frameCanvas.toBlob(resolve, "image/jpeg", 0.85));
}

// A photo's width scaled as shrinkPhoto scales it (on-device mode reads it at the size server mode sends).
export function photoWidth(bitmap) {
  return Math.round(bitmap.width * Math.min(1, PHOTO_MAX_SIDE / Math.max(bitmap.width, bitmap.height)));
}

// Phone photos can be far larger than the server accepts and than detection needs: send at most
// PHOTO_MAX_SIDE pixels a side (same proportions, so the boxes still fit the displayed photo).
export async function shrinkPhoto(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return file; // not decodable here: let the server say what is wrong with it
  }
  const scale = Math.min(1, PHOTO_MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  if (scale === 1 && file.size <= PHOTO_MAX_BYTES) return file;
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob((blob) => resolve(blob || file), "image/jpeg", 0.9));
}
