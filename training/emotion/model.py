"""Emotion CNNs. Every model takes raw grey pixels (0..255) and normalises inside, so the exported ONNX
graph needs no preprocessing beyond cropping and resizing."""

from __future__ import annotations

import torch
from torch import nn

# FER2013 train-split pixel statistics (computed once: images / 255, mean and std over all pixels).
FER_MEAN = 0.5077
FER_STD = 0.2550


def conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Normalise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x / 255.0 - FER_MEAN) / FER_STD


class VGGNet(nn.Module):
    """Stages of 3x3 conv-BN-ReLU blocks, each stage closed by 2x2 max pooling, then an MLP head.

    `stages` lists (channels, blocks) per stage. With an empty `hidden` the head is global average pooling
    and one linear layer; otherwise the pooled feature map is flattened into an MLP.
    """

    def __init__(
        self,
        stages: list[tuple[int, int]],
        hidden: list[int],
        dropout: float,
        size: int = 48,
        n_classes: int = 7,
        gap: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [Normalise()]
        cin = 1
        for cout, blocks in stages:
            for _ in range(blocks):
                layers.append(conv_bn(cin, cout))
                cin = cout
            layers.append(nn.MaxPool2d(2))
            size //= 2
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = []
        if gap:
            head += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            width = cin
        else:
            head += [nn.Flatten()]
            width = cin * size * size
        for h in hidden:
            head += [
                nn.Dropout(dropout),
                nn.Linear(width, h, bias=False),
                nn.BatchNorm1d(h),
                nn.ReLU(inplace=True),
            ]
            width = h
        head += [nn.Dropout(dropout), nn.Linear(width, n_classes)]
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES: dict[str, dict] = {
    # The prototype's network: six conv-BN-ReLU blocks, then a three-layer MLP.
    "original": dict(stages=[(64, 2), (128, 2), (256, 2)], hidden=[256, 128], dropout=0.3),
    # Ours: seven conv blocks, narrow at full resolution where a CPU pays most per channel, then an MLP
    # head on the 3x3 map (1.75M parameters, about 96M multiply-adds per face).
    "vgg7": dict(stages=[(32, 1), (64, 2), (128, 2), (256, 2)], hidden=[256], dropout=0.4),
    # vgg7 at 1.5x the channels (about 2.2x the multiply-adds): a teacher for distillation on a GPU.
    "vgg7-wide": dict(stages=[(48, 1), (96, 2), (192, 2), (384, 2)], hidden=[384], dropout=0.4),
}


def build(arch: str) -> VGGNet:
    return VGGNet(**ARCHITECTURES[arch])


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
