"""Emotion service: face detection and the emotion CNN, both through ONNX Runtime."""

import os

# ONNX Runtime on Linux otherwise writes a device-id file and starts telemetry uploads at import.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
