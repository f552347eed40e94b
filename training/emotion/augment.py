"""Batched augmentation on tensors, on whatever device the batch is: one affine warp and one erasing pass for
the whole batch, which keeps a 2-core CPU busy with the network rather than per-image Python, and lets a GPU
augment without a host round trip."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, rotate_deg: float, scale: float, shift: float) -> torch.Tensor:
    """Random rotation, zoom, shift and horizontal flip per image. x: float [B,1,H,W]."""
    b, dev = x.shape[0], x.device
    angle = (torch.rand(b, device=dev) * 2 - 1) * math.radians(rotate_deg)
    zoom = 1 + (torch.rand(b, device=dev) * 2 - 1) * scale
    flip = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
    tx, ty = ((torch.rand(2, b, device=dev) * 2 - 1) * shift * 2).unbind(0)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_erase(x: torch.Tensor, p: float, area: tuple[float, float] = (0.02, 0.2)) -> torch.Tensor:
    """Erases one random rectangle (random grey noise) in a fraction p of the images."""
    (b, _, h, w), dev = x.shape, x.device
    frac = torch.empty(b, device=dev).uniform_(*area)
    aspect = torch.exp(torch.empty(b, device=dev).uniform_(math.log(0.3), math.log(3.3)))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h).long()
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w).long()
    y0 = (torch.rand(b, device=dev) * (h - eh + 1)).long()
    x0 = (torch.rand(b, device=dev) * (w - ew + 1)).long()
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    mask = (
        (ys >= y0.view(b, 1, 1))
        & (ys < (y0 + eh).view(b, 1, 1))
        & (xs >= x0.view(b, 1, 1))
        & (xs < (x0 + ew).view(b, 1, 1))
    )
    mask &= (torch.rand(b, device=dev) < p).view(b, 1, 1)
    noise = torch.rand_like(x) * 255
    return torch.where(mask.unsqueeze(1), noise, x)
