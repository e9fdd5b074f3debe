"""Convert a MiniFASNet anti-spoofing checkpoint (torch legacy `.pth`) to ONNX, without torch.

The publisher (github.com/minivision-ai/Silent-Face-Anti-Spoofing, Apache-2.0) ships its
weights only as torch state_dicts, and the network only as PyTorch code
(`src/model_lib/MiniFASNet.py`). This module re-creates that inference graph with
`onnx.helper` from the state_dict alone, so the service runs it with onnxruntime and
torch never enters the environment. It is the builder of the manifest's `derived` source
kind: the installer calls `convert(parent_file, output_file)`.

The graph (MiniFASNetV1/V2 and their SE variants; channel widths and kernel sizes are
read from the tensors, strides and paddings are the publisher's):

    conv1       Conv_block 3x3 stride 2 pad 1              (conv + BN + PReLU)
    conv2_dw    Conv_block 3x3 stride 1 pad 1, depthwise
    conv_23     Depth_Wise stride 2                        (1x1 Conv_block -> 3x3 depthwise
                                                            Conv_block -> 1x1 Linear_block)
    conv_3      Residual: Depth_Wise stride 1 blocks, x + block(x)
    conv_34     Depth_Wise stride 2
    conv_4      Residual
    conv_45     Depth_Wise stride 2
    conv_5      Residual
    conv_6_sep  Conv_block 1x1
    conv_6_dw   Linear_block KxK depthwise, pad 0 (K = input/16: 5 for 80x80) -> 1x1
    flatten -> linear (512 -> 128, no bias, skipped when the embedding is 512 wide)
            -> BatchNorm1d -> dropout (identity at inference) -> prob (128 -> 3, no bias)

In the SE variants the *last* block of each residual stage also has an SE module applied
to the block's output before the shortcut is added: x + se(y) * y with
se = sigmoid(BN(conv1x1(relu(BN(conv1x1(avgpool(y))))))).

Every BatchNorm (eval mode, eps 1e-5) is folded into the convolution or linear layer
before it, in float64 and then rounded to float32 (elementwise IEEE arithmetic only, so
the folded weights are the same bits on every machine). Dropout is dropped.

Input "input": float32 [1, 3, H, W] (80x80 for both published models), BGR, raw 0-255
pixel values, no normalisation (the publisher's `ToTensor` has its /255 removed).
Output "logits": float32 [1, 3], pre-softmax; class 1 = real face, 0 and 2 = attacks.

The output file is deterministic: fixed producer name/version, no timestamps, fixed node
and tensor names, opset 13, IR version 8, so the same `.pth` always gives the same bytes
(with the same onnx version: pinned 1.17.0) and the manifest can pin its sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.legacy_torch import load_legacy_state_dict

OPSET = 13
IR_VERSION = 8
PRODUCER_NAME = "verification-service models.minifasnet"
PRODUCER_VERSION = "1"
BN_EPS = 1e-5
INPUT_NAME = "input"
OUTPUT_NAME = "logits"

# (stage name, kind, stride); kinds: conv_block, linear_block, depth_wise, residual.
# Strides and paddings are the publisher's (MiniFASNet.__init__), not derivable from shapes.
_STAGES: list[tuple[str, str, int]] = [
    ("conv1", "conv_block", 2),
    ("conv2_dw", "conv_block", 1),
    ("conv_23", "depth_wise", 2),
    ("conv_3", "residual", 1),
    ("conv_34", "depth_wise", 2),
    ("conv_4", "residual", 1),
    ("conv_45", "depth_wise", 2),
    ("conv_5", "residual", 1),
    ("conv_6_sep", "conv_block", 1),
    ("conv_6_dw", "linear_block", 1),
]
# Parameters used only in training (the Fourier-spectrum auxiliary branch of MultiFTNet).
_TRAINING_ONLY_PREFIXES = ("FTGenerator.",)


class ConversionError(ValueError):
    """The state_dict does not describe a MiniFASNet this converter understands."""


class _GraphBuilder:
    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state = state
        self.used: set[str] = set()
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    # -- parameters ---------------------------------------------------------------------
    def param(self, key: str) -> np.ndarray:
        if key not in self.state:
            raise ConversionError(f"state_dict has no {key!r}; not a MiniFASNet checkpoint?")
        self.used.add(key)
        return self.state[key].astype(np.float64)

    def has(self, key: str) -> bool:
        return key in self.state

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(
            numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)
        )
        return name

    def bn_scale_shift(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        gamma = self.param(f"{prefix}.weight")
        beta = self.param(f"{prefix}.bias")
        mean = self.param(f"{prefix}.running_mean")
        var = self.param(f"{prefix}.running_var")
        self.used.add(f"{prefix}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        return scale, beta - mean * scale

    # -- layers -------------------------------------------------------------------------
    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv_bn(self, x: str, channels_in: int, conv_key: str, bn_prefix: str, name: str,
                stride: int, pad: int | None) -> tuple[str, int]:
        """Conv2d(bias=False) followed by BatchNorm2d, folded into one Conv.

        `pad` None means "same" padding for odd kernels (k // 2), as the publisher uses.
        """
        weight = self.param(conv_key)
        if weight.ndim != 4:
            raise ConversionError(f"{conv_key}: expected a 4-d conv weight, got {weight.shape}")
        out_c, in_per_group, kh, kw = weight.shape
        if channels_in % in_per_group:
            raise ConversionError(
                f"{conv_key}: {channels_in} input channels do not split into groups of "
                f"{in_per_group}"
            )
        groups = channels_in // in_per_group
        if pad is None:
            pad = kh // 2
        scale, shift = self.bn_scale_shift(bn_prefix)
        if scale.shape != (out_c,):
            raise ConversionError(f"{bn_prefix}: {scale.shape} does not match {out_c} channels")
        w = self.const(f"{name}.weight", weight * scale[:, None, None, None])
        b = self.const(f"{name}.bias", shift)
        y = self.node("Conv", [x, w, b], name, kernel_shape=[kh, kw], strides=[stride, stride],
                      pads=[pad, pad, pad, pad], group=groups, dilations=[1, 1])
        return y, out_c

    def conv_block(self, x: str, c: int, prefix: str, stride: int) -> tuple[str, int]:
        """Conv_block: conv + BN + PReLU (per-channel slopes)."""
        y, c = self.conv_bn(x, c, f"{prefix}.conv.weight", f"{prefix}.bn", f"{prefix}.conv",
                            stride, None)
        slope = self.param(f"{prefix}.prelu.weight")
        if slope.shape != (c,):
            raise ConversionError(f"{prefix}.prelu.weight: {slope.shape} for {c} channels")
        s = self.const(f"{prefix}.prelu.slope", slope.reshape(c, 1, 1))
        return self.node("PRelu", [y, s], f"{prefix}.prelu"), c

    def linear_block(self, x: str, c: int, prefix: str, stride: int, pad: int) -> tuple[str, int]:
        """Linear_block: conv + BN, no activation."""
        return self.conv_bn(x, c, f"{prefix}.conv.weight", f"{prefix}.bn", f"{prefix}.conv",
                            stride, pad)

    def se_module(self, x: str, c: int, prefix: str) -> str:
        """SEModule: x * sigmoid(BN(fc2(relu(BN(fc1(avgpool(x)))))))."""
        pooled = self.node("GlobalAveragePool", [x], f"{prefix}.avg_pool")
        h, hc = self.conv_bn(pooled, c, f"{prefix}.fc1.weight", f"{prefix}.bn1",
                             f"{prefix}.fc1", 1, 0)
        h = self.node("Relu", [h], f"{prefix}.relu")
        g, gc = self.conv_bn(h, hc, f"{prefix}.fc2.weight", f"{prefix}.bn2",
                             f"{prefix}.fc2", 1, 0)
        if gc != c:
            raise ConversionError(f"{prefix}: SE gate has {gc} channels for {c}")
        g = self.node("Sigmoid", [g], f"{prefix}.sigmoid")
        return self.node("Mul", [x, g], f"{prefix}.scale")

    def depth_wise(self, x: str, c: int, prefix: str, stride: int,
                   residual: bool) -> tuple[str, int]:
        """Depth_Wise(_SE): 1x1 expand, 3x3 depthwise (stride), 1x1 project, [SE], [+x]."""
        y, c1 = self.conv_block(x, c, f"{prefix}.conv", 1)
        y, c2 = self.conv_block(y, c1, f"{prefix}.conv_dw", stride)
        dw = self.state[f"{prefix}.conv_dw.conv.weight"]
        if dw.shape[1] != 1:
            raise ConversionError(f"{prefix}.conv_dw is not depthwise: {dw.shape}")
        y, c3 = self.linear_block(y, c2, f"{prefix}.project", 1, 0)
        if residual:
            if c3 != c:
                raise ConversionError(f"{prefix}: residual block maps {c} -> {c3} channels")
            if self.has(f"{prefix}.se_module.fc1.weight"):
                y = self.se_module(y, c3, f"{prefix}.se_module")
            y = self.node("Add", [x, y], f"{prefix}.add")
        elif self.has(f"{prefix}.se_module.fc1.weight"):
            raise ConversionError(f"{prefix}: SE module on a non-residual block")
        return y, c3

    def residual(self, x: str, c: int, prefix: str) -> tuple[str, int]:
        i = 0
        while self.has(f"{prefix}.model.{i}.conv.conv.weight"):
            x, c = self.depth_wise(x, c, f"{prefix}.model.{i}", 1, residual=True)
            i += 1
        if i == 0:
            raise ConversionError(f"state_dict has no blocks under {prefix!r}")
        return x, c


def _variant(state: dict[str, np.ndarray]) -> str:
    se = any(".se_module." in k for k in state)
    return "MiniFASNetSE" if se else "MiniFASNet"


def build_model(state: dict[str, np.ndarray], source_sha256: str = "") -> onnx.ModelProto:
    """Build the ONNX inference model from a MiniFASNet state_dict (names without `module.`)."""
    g = _GraphBuilder(state)
    channels_in = int(state.get("conv1.conv.weight", np.zeros((0, 3))).shape[1])
    x, c = INPUT_NAME, channels_in
    for name, kind, stride in _STAGES:
        if kind == "conv_block":
            x, c = g.conv_block(x, c, name, stride)
        elif kind == "linear_block":  # conv_6_dw: depthwise KxK, no padding
            x, c = g.linear_block(x, c, name, stride, 0)
        elif kind == "depth_wise":
            x, c = g.depth_wise(x, c, name, stride, residual=False)
        else:
            x, c = g.residual(x, c, name)

    # conv_6_dw reduces the 1/16-resolution map to 1x1: its kernel fixes the input size.
    kh, kw = state["conv_6_dw.conv.weight"].shape[2:]
    height, width = 16 * kh, 16 * kw
    x = g.node("Flatten", [x], "conv_6_flatten", axis=1)

    lin = g.param("linear.weight")  # (embedding, 512)
    scale, shift = g.bn_scale_shift("bn")
    if lin.shape[1] != c:
        raise ConversionError(f"linear.weight {lin.shape} does not take {c} features")
    if lin.shape[0] != 512:  # the publisher skips `linear` for a 512-wide embedding
        if scale.shape != (lin.shape[0],):
            raise ConversionError(f"bn {scale.shape} does not match linear {lin.shape}")
        w = g.const("linear_bn.weight", lin * scale[:, None])
        b = g.const("linear_bn.bias", shift)
        x = g.node("Gemm", [x, w, b], "linear_bn", transB=1)
    else:  # BatchNorm1d alone, as an affine map
        x = g.node("Mul", [x, g.const("bn.scale", scale[None, :])], "bn.mul")
        x = g.node("Add", [x, g.const("bn.shift", shift[None, :])], "bn.add")
    prob = g.param("prob.weight")  # (classes, embedding)
    n_classes = prob.shape[0]
    w = g.const("prob.weight", prob)
    g.nodes.append(helper.make_node("Gemm", [x, w], [OUTPUT_NAME], name="prob", transB=1))
    if g.has("prob.bias"):
        raise ConversionError("prob has a bias; the publisher's head has none")

    unused = sorted(
        k for k in state
        if k not in g.used and not k.startswith(_TRAINING_ONLY_PREFIXES)
    )
    if unused:
        raise ConversionError(f"state_dict entries the graph does not use: {unused[:8]}")

    graph = helper.make_graph(
        g.nodes,
        _variant(state),
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT,
                                       [1, channels_in, height, width])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, n_classes])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name=PRODUCER_NAME,
        producer_version=PRODUCER_VERSION,
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=(
            "MiniFASNet silent anti-spoofing (minivision-ai/Silent-Face-Anti-Spoofing, "
            "Apache-2.0), BatchNorm folded. Input BGR 0-255 float32 NCHW, "
            "output pre-softmax logits, class 1 = real face."
        ),
    )
    model.ir_version = IR_VERSION
    props = {"source_sha256": source_sha256, "architecture": _variant(state),
             "input": f"BGR 0-255 float32 [1,{channels_in},{height},{width}]",
             "output": f"logits [1,{n_classes}], softmax class 1 = real"}
    helper.set_model_props(model, {k: v for k, v in props.items() if v})
    onnx.checker.check_model(model, full_check=True)
    return model


def convert(src: Path, out: Path) -> None:
    """Read the `.pth` at `src` and write the ONNX model to `out` (deterministic bytes)."""
    src, out = Path(src), Path(out)
    data = src.read_bytes()
    model = build_model(load_legacy_state_dict(src), hashlib.sha256(data).hexdigest())
    blob = model.SerializeToString(deterministic=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(blob)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=convert.__doc__)
    parser.add_argument("src", type=Path, help="MiniFASNet .pth (torch legacy format)")
    parser.add_argument("out", type=Path, help="ONNX file to write")
    args = parser.parse_args(argv)
    try:
        convert(args.src, args.out)
    except (ValueError, OSError) as exc:
        sys.exit(f"conversion failed: {exc}")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"{args.out}  sha256 {digest}")


if __name__ == "__main__":
    main()
