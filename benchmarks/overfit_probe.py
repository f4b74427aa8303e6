"""Overfitting probe: can an encoder fit 48 training clips of world_600 in 60 steps?

A quick check of optimisability (a ViT that cannot overfit 48 clips will not learn the task
from scratch either). Arguments: pairs of preset name and a Python dict of overrides.

    python benchmarks/overfit_probe.py videomae-tiny "{}" videomae-tiny "dict(conv_stem=True)"
"""
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vidfm.data import SyntheticWorld
from vidfm.models import build_encoder
torch.manual_seed(0)
w = SyntheticWorld(str(Path(__file__).resolve().parent / "_data" / "world_600"))
ds = w.classification("train", num_frames=8, sampler="segments")
idx = list(range(48))
X = torch.stack([ds[i]["video"] for i in idx]); Y = torch.tensor([ds[i]["label"] for i in idx])
for name, kw in [(a, eval(b)) for a, b in zip(sys.argv[1::2], sys.argv[2::2])]:
    torch.manual_seed(0)
    enc = build_encoder(name, **kw); head = torch.nn.Linear(enc.output_dim, 12)
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    t = time.time()
    for step in range(60):
        b = torch.randint(0, 48, (16,))
        loss = F.cross_entropy(head(enc(X[b]).pooled), Y[b]); opt.zero_grad(); loss.backward(); opt.step()
    enc.eval()
    with torch.no_grad(): acc = (head(enc(X).pooled).argmax(-1) == Y).float().mean().item()
    print(name, kw, f"train acc {acc:.3f} loss {loss.item():.3f} {time.time()-t:.0f}s", flush=True)
