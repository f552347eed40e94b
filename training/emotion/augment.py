"""Batched augmentation on tensors: one affine warp and one erasing pass for the whole batch, which keeps a
2-core CPU busy with the network rather than with per-image Python."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, rotate_deg: float, scale: float, shift: float) -> torch.Tensor:
    """Random rotation, zoom, shift and horizontal flip per image. x: float [B,1,H,W]."""
    b = x.shape[0]
    angle = (torch.rand(b) * 2 - 1) * math.radians(rotate_deg)
    zoom = 1 + (torch.rand(b) * 2 - 1) * scale
    flip = torch.where(torch.rand(b) < 0.5, -1.0, 1.0)
    tx, ty = ((torch.rand(2, b) * 2 - 1) * shift * 2).unbind(0)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_erase(x: torch.Tensor, p: float, area: tuple[float, float] = (0.02, 0.2)) -> torch.Tensor:
    """Erases one random rectangle (random grey noise) in a fraction p of the images."""
    b, _, h, w = x.shape
    frac = torch.empty(b).uniform_(*area)
    aspect = torch.exp(torch.empty(b).uniform_(math.log(0.3), math.log(3.3)))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h).long()
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w).long()
    y0 = (torch.rand(b) * (h - eh + 1)).long()
    x0 = (torch.rand(b) * (w - ew + 1)).long()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    mask = ((ys >= y0.view(b, 1, 1)) & (ys < (y0 + eh).view(b, 1, 1))
            & (xs >= x0.view(b, 1, 1)) & (xs < (x0 + ew).view(b, 1, 1)))
    mask &= (torch.rand(b) < p).view(b, 1, 1)
    noise = torch.rand_like(x) * 255
    return torch.where(mask.unsqueeze(1), noise, x)
