"""The two ONNX graphs that both runtimes run: the emotion service (ONNX Runtime) and the page's
on-device mode (onnxruntime-web). Each wraps a shipped model, unchanged, in the preprocessing and the
postprocessing that used to be Python code, so the browser computes what the server computes by
construction. Built at load time from the shipped files (any emotion CNN with the card's contract).

detect graph: the grey frame (uint8 [H, W]) -> CenterFace faces.
    window float32 [4]  (x, y, w, h) in frame pixels: the part of the plane that becomes the detector
                        input. The whole frame, a tracking region inside it, or, for the "framed" retry,
                        an area larger than the frame: what lies outside the frame reads as `fill`.
    size   int64 [2]    the detector input (height, width), multiples of 32.
    fill   float32 [1]  the grey level outside the frame.
    -> faces float32 [K, 7]: x, y, w, h (whole frame pixels, rounded, clipped to the window and the frame),
       score, and the eye vector dx, dy (image-left eye to the other, pixels) for the head's roll; in the
       order non-maximum suppression keeps them (best score first).

classify graph: the grey frame (uint8 [H, W]) and one square per face -> emotion probabilities.
    squares float32 [N, 4]  x0, y0, side (the square's top-left corner and side, frame pixels), roll
                            (degrees, the head's roll: the square is turned by it about its centre).
    -> probabilities float32 [N, 7]: softmax(logits / the card's temperature).
The square is sampled bilinearly at SUPERSAMPLE x the CNN's input side (edge pixels repeated outside
the frame) and averaged down SUPERSAMPLE x SUPERSAMPLE, an area resize for faces up to that size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.compose import add_prefix

OPSET = 18
IR_VERSION = 8
STRIDE = 4  # CenterFace predicts on a 4x-strided grid
SUPERSAMPLE = 4
FRAME = "frame"
DETECT_INPUTS = ("frame", "window", "size", "fill")
CLASSIFY_INPUTS = ("frame", "squares")
# Faces the detector can return at most before the service's own max_faces cut: NMS's output bound.
MAX_DETECTIONS = 200
_CENTERFACE_IN = "input.1"
_CENTERFACE_OUT = ("537", "538", "539", "540")  # heatmap, scale (log h, w), offset (y, x), landmarks


class _Builder:
    """A few helpers over onnx.helper: each op returns its output name."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def name(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"

    def const(self, value: object, dtype: type = np.float32) -> str:
        name = self.name()
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        output = out or self.name()
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output

    def col(self, matrix: str, i: int, axis: int = 1) -> str:
        """matrix[:, i] (axis 1) or matrix[i] (axis 0), without that axis."""
        return self.op("Gather", matrix, self.const(i, np.int64), axis=axis)


def _centerface(path: Path) -> onnx.ModelProto:
    """The shipped CenterFace graph for a grey [1, 1, h, w] input at any size, its weights constants.
    The network starts with a convolution on the raw pixels, so a grey picture in all three channels
    gives the same sums as the grey channel alone convolved with the three kernels added up."""
    model = onnx.load(str(path))
    weights = {init.name: init for init in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in weights]
    used = {name for node in model.graph.node for name in node.input}
    unused = [init for init in model.graph.initializer if init.name not in used]
    for init in unused:  # BatchNorm's num_batches_tracked counters
        model.graph.initializer.remove(init)
    del model.graph.input[:]
    model.graph.input.extend(kept)
    first = next(n for n in model.graph.node if _CENTERFACE_IN in n.input)
    kernel = weights[first.input[1]]
    folded = numpy_helper.to_array(kernel).sum(axis=1, keepdims=True).astype(np.float32)
    kernel.CopyFrom(numpy_helper.from_array(folded, kernel.name))
    dims: dict[str, list[int | str]] = {
        _CENTERFACE_IN: [1, 1, "H", "W"],
        "537": [1, 1, "h", "w"],
        "538": [1, 2, "h", "w"],
    }
    dims |= {"539": [1, 2, "h", "w"], "540": [1, 10, "h", "w"]}
    for value in [*model.graph.input, *model.graph.output]:
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for d in dims[value.name]:
            shape.dim.add().CopyFrom(
                onnx.TensorShapeProto.Dimension(dim_value=d)
                if isinstance(d, int)
                else onnx.TensorShapeProto.Dimension(dim_param=d)
            )
    del model.graph.value_info[:]
    # Conv, Relu, Add, ConvTranspose, BatchNormalization and Sigmoid read the same at opset 18.
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", OPSET))
    model.ir_version = IR_VERSION
    return model


def half_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its float32 weights stored as float16, each behind a Cast back to float32: half
    the bytes to download; ONNX Runtime folds the Casts when it loads the model, so it still computes in
    float32 (with weights rounded to float16)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or math.prod(init.dims) < 16:
            continue
        name, stored = init.name, f"{init.name}.float16"
        weights = numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(numpy_helper.from_array(weights, stored))
        casts.append(helper.make_node("Cast", [stored], [name], to=TensorProto.FLOAT))
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    return out


def _grid(b: _Builder, theta: str, rows: str, cols: str) -> str:
    """The sampling grid [N, rows, cols, 2] (x, y in [-1, 1], align_corners=0) of the affine maps
    theta [N, 2, 3], from output to input normalised coordinates (what AffineGrid gives at opset 20)."""
    i64 = np.int64

    def axis(count: str) -> str:  # pixel centres in [-1, 1]: (i + 0.5) * 2 / count - 1
        count = b.op("Reshape", count, b.const(np.zeros(0), i64))  # Range takes scalars
        n = b.op("Cast", count, to=TensorProto.FLOAT)
        steps = b.op("Cast", b.op("Range", b.const(0, i64), count, b.const(1, i64)), to=TensorProto.FLOAT)
        return b.op(
            "Sub", b.op("Div", b.op("Mul", b.op("Add", steps, b.const(0.5)), b.const(2.0)), n), b.const(1.0)
        )

    xs, ys = axis(cols), axis(rows)
    shape = b.op("Concat", rows, cols, b.const([1], i64), axis=0)  # [rows, cols, 1]
    gx = b.op("Expand", b.op("Unsqueeze", xs, b.const([0, 2], i64)), shape)
    gy = b.op("Expand", b.op("Unsqueeze", ys, b.const([1, 2], i64)), shape)
    ones = b.op("Expand", b.const([[[1.0]]]), shape)
    base = b.op("Reshape", b.op("Concat", gx, gy, ones, axis=2), b.const([-1, 3], i64))  # [P, 3]
    # [N, 2, 3] x [3, P] -> [N, 2, P] -> [N, P, 2]
    points = b.op("Transpose", b.op("MatMul", theta, b.op("Transpose", base, perm=[1, 0])), perm=[0, 2, 1])
    batch = b.op("Slice", b.op("Shape", theta), b.const([0], i64), b.const([1], i64))
    return b.op("Reshape", points, b.op("Concat", batch, rows, cols, b.const([2], i64), axis=0))


def detect_graph(centerface: Path, threshold: float, nms_iou: float, half: bool = False) -> onnx.ModelProto:
    """The detect graph (module docstring) around the shipped CenterFace weights. half: its weights
    stored as float16 (half the download, computed in float32)."""
    core = _centerface(centerface)
    if half:
        core = half_weights(core)
    i64, f32 = np.int64, TensorProto.FLOAT

    pre = _Builder("pre/")
    frame = helper.make_tensor_value_info(FRAME, TensorProto.UINT8, ["H", "W"])
    window = helper.make_tensor_value_info("window", f32, [4])
    size = helper.make_tensor_value_info("size", TensorProto.INT64, [2])
    fill = helper.make_tensor_value_info("fill", f32, [1])
    # Frame minus fill, sampled with zeros outside, plus fill: the frame set in a plain `fill` border.
    pixels = pre.op("Sub", pre.op("Cast", FRAME, to=f32), "fill")
    image = pre.op("Unsqueeze", pixels, pre.const([0, 1], i64))
    wh = pre.op("Cast", pre.op("Gather", pre.op("Shape", FRAME), pre.const([1, 0], i64)), to=f32)  # W, H
    xy = pre.op("Slice", "window", pre.const([0], i64), pre.const([2], i64))
    extent = pre.op("Slice", "window", pre.const([2], i64), pre.const([4], i64))
    scale = pre.op("Div", extent, wh)
    shift = pre.op(
        "Sub", pre.op("Div", pre.op("Add", pre.op("Mul", xy, pre.const(2.0)), extent), wh), pre.const(1.0)
    )
    diag = pre.op("Mul", pre.const(np.eye(2)), pre.op("Unsqueeze", scale, pre.const([1], i64)))
    theta = pre.op(
        "Unsqueeze",
        pre.op("Concat", diag, pre.op("Unsqueeze", shift, pre.const([1], i64)), axis=1),
        pre.const([0], i64),
    )
    rows = pre.op("Slice", "size", pre.const([0], i64), pre.const([1], i64))
    cols = pre.op("Slice", "size", pre.const([1], i64), pre.const([2], i64))
    grid = _grid(pre, theta, rows, cols)
    sampled = pre.op("GridSample", image, grid, mode="bilinear", padding_mode="zeros", align_corners=0)
    pre.op("Add", sampled, "fill", out=f"centerface/{_CENTERFACE_IN}")

    post = _Builder("post/")
    heat, logsize, offset, marks = (f"centerface/{n}" for n in _CENTERFACE_OUT)
    width = post.op("Slice", post.op("Shape", heat), post.const([3], i64), post.const([4], i64))
    flat = post.op("Reshape", heat, post.const([-1], i64))
    idx = post.op(
        "Reshape", post.op("NonZero", post.op("Greater", flat, post.const(threshold))), post.const([-1], i64)
    )
    scores = post.op("Gather", flat, idx)
    rowi = post.op("Cast", post.op("Div", idx, width), to=f32)
    coli = post.op("Cast", post.op("Mod", idx, width), to=f32)

    def at(maps: str, channels: int) -> str:  # [channels, K]: each channel at the kept cells
        return post.op("Gather", post.op("Reshape", maps, post.const([channels, -1], i64)), idx, axis=1)

    s, o, m = at(logsize, 2), at(offset, 2), at(marks, 10)
    four = post.const(float(STRIDE))
    bh = post.op("Mul", post.op("Exp", post.col(s, 0, 0)), four)
    bw = post.op("Mul", post.op("Exp", post.col(s, 1, 0)), four)
    half_c = post.const(0.5)
    cy = post.op("Mul", post.op("Add", post.op("Add", rowi, post.col(o, 0, 0)), half_c), four)
    cx = post.op("Mul", post.op("Add", post.op("Add", coli, post.col(o, 1, 0)), half_c), four)
    # Detector input pixels -> frame pixels: scale by window / size, then offset by the window's corner.
    sizes = post.op("Cast", post.op("Gather", "size", post.const([1, 0], i64)), to=f32)  # in_w, in_h
    extent = post.op("Slice", "window", post.const([2], i64), post.const([4], i64))
    ratio = post.op("Div", extent, sizes)
    sx, sy = post.col(ratio, 0, 0), post.col(ratio, 1, 0)
    wx, wy = post.col("window", 0, 0), post.col("window", 1, 0)
    frame_wh = post.op("Cast", post.op("Gather", post.op("Shape", FRAME), post.const([1, 0], i64)), to=f32)
    # Clipped to the window's part of the frame.
    lo = post.op(
        "Max", post.op("Slice", "window", post.const([0], i64), post.const([2], i64)), post.const([0.0, 0.0])
    )
    hi = post.op(
        "Min",
        post.op("Add", post.op("Slice", "window", post.const([0], i64), post.const([2], i64)), extent),
        frame_wh,
    )
    lox, loy, hix, hiy = post.col(lo, 0, 0), post.col(lo, 1, 0), post.col(hi, 0, 0), post.col(hi, 1, 0)

    def to_frame(v: str, scale_: str, origin: str, low: str, high: str) -> str:
        return post.op("Min", post.op("Max", post.op("Add", post.op("Mul", v, scale_), origin), low), high)

    left = post.op("Sub", cx, post.op("Mul", bw, half_c))
    top = post.op("Sub", cy, post.op("Mul", bh, half_c))
    x0 = to_frame(left, sx, wx, lox, hix)
    y0 = to_frame(top, sy, wy, loy, hiy)
    x1 = to_frame(post.op("Add", cx, post.op("Mul", bw, half_c)), sx, wx, lox, hix)
    y1 = to_frame(post.op("Add", cy, post.op("Mul", bh, half_c)), sy, wy, loy, hiy)

    # Landmarks are offsets in box units from the unclipped box corner, (y, x) pairs; the eyes first.
    # In frame pixels, so the input's aspect change cancels.
    def mark(i: int, origin: str, extent_: str, scale_: str) -> str:
        return post.op("Mul", post.op("Add", origin, post.op("Mul", post.col(m, i, 0), extent_)), scale_)

    dx = post.op("Sub", mark(3, left, bw, sx), mark(1, left, bw, sx))
    dy = post.op("Sub", mark(2, top, bh, sy), mark(0, top, bh, sy))
    corners = post.op(
        "Concat", *(post.op("Unsqueeze", v, post.const([1], i64)) for v in (y0, x0, y1, x1)), axis=1
    )
    keep = post.op(
        "NonMaxSuppression",
        post.op("Unsqueeze", corners, post.const([0], i64)),
        post.op("Unsqueeze", scores, post.const([0, 1], i64)),
        post.const([MAX_DETECTIONS], i64),
        post.const([nms_iou]),
        post.const([threshold]),
    )
    kept = post.col(keep, 2)
    rx0, ry0 = post.op("Round", x0), post.op("Round", y0)
    cols_out = [
        rx0,
        ry0,
        post.op("Sub", post.op("Round", x1), rx0),
        post.op("Sub", post.op("Round", y1), ry0),
        scores,
        dx,
        dy,
    ]
    table = post.op("Concat", *(post.op("Unsqueeze", v, post.const([1], i64)) for v in cols_out), axis=1)
    post.op("Gather", table, kept, out="faces")
    return _wrap(core, "centerface/", pre, post, [frame, window, size, fill], "faces", ["K", 7])


def classify_graph(cnn: Path, temperature: float) -> onnx.ModelProto:
    """The classify graph (module docstring) around the emotion CNN: any model with one float input
    [N, 1, h, w] (grey 0..255) and one output of logits [N, 7]."""
    core = onnx.load(str(cnn))
    if len(core.graph.input) != 1 or len(core.graph.output) != 1:
        raise ValueError(f"{cnn}: expected one input and one output")
    cnn_in, cnn_out = core.graph.input[0].name, core.graph.output[0].name
    dims = core.graph.input[0].type.tensor_type.shape.dim
    height, width = dims[2].dim_value, dims[3].dim_value
    i64, f32 = np.int64, TensorProto.FLOAT

    pre = _Builder("crop/")
    image = pre.op("Unsqueeze", pre.op("Cast", FRAME, to=f32), pre.const([0, 1], i64))
    wh = pre.op("Cast", pre.op("Gather", pre.op("Shape", FRAME), pre.const([1, 0], i64)), to=f32)
    big_w, big_h = pre.col(wh, 0, 0), pre.col(wh, 1, 0)
    x0, y0, side = pre.col("squares", 0), pre.col("squares", 1), pre.col("squares", 2)
    roll = pre.op("Mul", pre.col("squares", 3), pre.const(math.pi / 180))
    cos, sin = pre.op("Cos", roll), pre.op("Sin", roll)
    half = pre.op("Mul", side, pre.const(0.5))
    cx, cy = pre.op("Add", x0, half), pre.op("Add", y0, half)
    two = pre.const(2.0)
    one = pre.const(1.0)
    # The square's pixel (u, v) (normalised, from its centre) is the frame's
    # centre + side / 2 * [[cos, -sin], [sin, cos]] (u, v): cv2.getRotationMatrix2D(centre, roll)'s inverse.
    sw, sh = pre.op("Div", side, big_w), pre.op("Div", side, big_h)
    entries = [
        pre.op("Mul", cos, sw),
        pre.op("Neg", pre.op("Mul", sin, sw)),
        pre.op("Sub", pre.op("Div", pre.op("Mul", cx, two), big_w), one),
        pre.op("Mul", sin, sh),
        pre.op("Mul", cos, sh),
        pre.op("Sub", pre.op("Div", pre.op("Mul", cy, two), big_h), one),
    ]
    theta = pre.op(
        "Reshape",
        pre.op("Concat", *(pre.op("Unsqueeze", e, pre.const([1], i64)) for e in entries), axis=1),
        pre.const([-1, 2, 3], i64),
    )
    rows, cols = pre.const([height * SUPERSAMPLE], i64), pre.const([width * SUPERSAMPLE], i64)
    grid = _grid(pre, theta, rows, cols)
    # Every face's grid stacked into one tall grid over the one frame: no copy of the frame per face.
    tall = pre.op("Reshape", grid, pre.const([1, -1, width * SUPERSAMPLE, 2], i64))
    sampled = pre.op("GridSample", image, tall, mode="bilinear", padding_mode="border", align_corners=0)
    faces = pre.op("Reshape", sampled, pre.const([-1, 1, height * SUPERSAMPLE, width * SUPERSAMPLE], i64))
    pre.op(
        "AveragePool", faces, out=f"cnn/{cnn_in}", kernel_shape=[SUPERSAMPLE] * 2, strides=[SUPERSAMPLE] * 2
    )
    post = _Builder("softmax/")
    post.op("Softmax", post.op("Div", f"cnn/{cnn_out}", post.const(temperature)), out="probabilities", axis=1)
    inputs = [
        helper.make_tensor_value_info(FRAME, TensorProto.UINT8, ["H", "W"]),
        helper.make_tensor_value_info("squares", f32, ["N", 4]),
    ]
    return _wrap(core, "cnn/", pre, post, inputs, "probabilities", ["N", 7])


def _wrap(
    core: onnx.ModelProto,
    prefix: str,
    pre: _Builder,
    post: _Builder,
    inputs: list[onnx.ValueInfoProto],
    output: str,
    dims: list[int | str],
) -> onnx.ModelProto:
    """One graph: pre's nodes feed the core's input (its names prefixed), post's read its outputs."""
    core = add_prefix(core, prefix)
    graph = helper.make_graph(
        [*pre.nodes, *core.graph.node, *post.nodes],
        "moodtunes",
        inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, dims)],
        [*pre.inits, *core.graph.initializer, *post.inits],
    )
    model = helper.make_model(
        graph, opset_imports=list(core.opset_import), ir_version=max(core.ir_version, IR_VERSION)
    )
    for prop in core.metadata_props:
        model.metadata_props.append(prop)
    onnx.checker.check_model(model)
    return model
