"""Exact evaluation of video edits on the synthetic world (V2VBench-like, offline).

The world renders *edit pairs*: a test video's main shot re-rendered from the same scene
description with one attribute changed (colour, shape, size, or the direction of a
move), so the edited video has an exact target, the edited object an exact mask (its
pixels in the source or the target) and an exact motion. Backgrounds are not an edit
kind: the world's captions never name them, so no prompt can ask for one.

Scores per edited clip (``edit_scores``): success by the world judges (the target's
colour / shape / action; size by the object's pixel area against source and target),
PSNR / SSIM outside the true mask against the exact target and against the source,
full-frame PSNR against the target, IoU of a derived mask against the true one, warp
error along the true motion, flicker, and for drags the endpoint error.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from vidfm.data.synthetic import (
    COLOURS,
    SHAPES,
    SIZES,
    ObjectSpec,
    ShotSpec,
    _object_state,
    render_shot,
)
from vidfm.tasks.generate import clip_indices
from vidfm.tasks.generation_eval import _describe

EDIT_KINDS = ("colour", "shape", "size", "action")
FLIPPED = {"move_left": "move_right", "move_right": "move_left", "move_up": "move_down", "move_down": "move_up"}
SKIP_ACTIONS = ("change_colour", "appear", "disappear")  # the object's colour or presence is the action itself


def _shot(meta_shot: dict) -> ShotSpec:
    objs = [ObjectSpec(**{k: v for k, v in o.items() if k != "mask_id"}) for o in meta_shot["objects"]]
    return ShotSpec(**{**meta_shot, "objects": objs})


def _edited(shot: ShotSpec, kind: str, rng: np.random.Generator) -> ShotSpec | None:
    main = shot.main
    if kind == "colour":
        used = {o.colour for o in shot.objects}
        new = dataclasses.replace(main, colour=str(rng.choice([c for c in COLOURS if c not in used])))
    elif kind == "shape":
        new = dataclasses.replace(main, shape=str(rng.choice([s for s in SHAPES if s != main.shape and not (main.action == "rotate" and s == "circle")])))
    elif kind == "size":
        new = dataclasses.replace(main, size=str(rng.choice([s for s in SIZES if s != main.size])))
    elif kind == "action":
        if main.action not in FLIPPED:
            return None
        new = dataclasses.replace(main, action=FLIPPED[main.action], x0=main.x1, x1=main.x0, y0=main.y1, y1=main.y0)
    else:
        raise ValueError(kind)
    return dataclasses.replace(shot, objects=[new, *shot.objects[1:]])


def _sized(kind: str, size: str, prompt: str) -> str:
    """Size edits name the size ('a small red circle ...'), as the world's captions can."""
    return prompt.replace("a ", f"a {size} ", 1) if kind == "size" else prompt


def _area(video: np.ndarray, colour: str) -> int:
    """Pixels of ``colour`` in a clip, as the judges see them (palette lookup at the clip's size)."""
    from vidfm.tasks.generation_eval import COLOUR_NAMES, colour_masks

    return int((colour_masks(video[None])[0] == COLOUR_NAMES.index(colour)).sum())


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


def edit_pairs(world, split: str = "test", kinds=EDIT_KINDS, per_kind: int = 8, num_frames: int = 9, size: int = 32, seed: int = 0) -> list[dict]:
    """Per kind, up to ``per_kind`` pairs ``{kind, video_id, source, target (T, H, W, 3)
    uint8, mask (T, H, W) bool, source_prompt, prompt, shape, colour, action, size,
    track (T, 2) the edited object's centre per frame, source_track}`` from single-shot,
    static-camera videos of ``split``."""
    from vidfm.data.datasets import SyntheticWorld

    rng = np.random.default_rng(seed)
    source = SyntheticWorld(world)
    world_size = int(source.summary["config"]["size"])
    metas = [m for m in source.metadata() if m["split"] == split and len(m["shots"]) == 1
             and m["shots"][0].get("camera", "static") == "static" and m["shots"][0]["objects"][0]["action"] not in SKIP_ACTIONS]  # fmt: skip
    out = []
    for kind in kinds:
        n = 0
        for m in metas:
            if n >= per_kind:
                break
            shot = _shot(m["shots"][0])
            target = _edited(shot, kind, rng)
            if target is None:
                continue
            idx = clip_indices(shot.frames, num_frames, shot.main.start, shot.main.end)
            src_frames, src_labels = render_shot(shot, world_size, m["fps"])
            tgt_frames, tgt_labels = render_shot(target, world_size, m["fps"])
            scale = size / world_size
            src, tgt = _resize(src_frames[idx], size), _resize(tgt_frames[idx], size)
            # every pixel the edit may change: the object's cells in either clip (pooled, so a
            # partly covered pixel counts) and wherever the two renderings differ at all
            labels = ((src_labels[idx] == 1) | (tgt_labels[idx] == 1)).astype(np.float32)
            pooled = labels.reshape(len(idx), size, world_size // size, size, world_size // size).max((2, 4)) > 0
            mask = pooled | (np.abs(src.astype(int) - tgt.astype(int)).max(-1) > 0)
            tm = target.main
            out.append({
                "kind": kind, "video_id": m["video_id"],
                "source": src, "target": tgt, "mask": mask,
                "source_prompt": _sized(kind, shot.main.size, _describe(shot.main.shape, shot.main.colour, shot.main.action, shot.main.new_colour)),
                "prompt": _sized(kind, tm.size, _describe(tm.shape, tm.colour, tm.action, tm.new_colour)),
                "shape": tm.shape, "colour": tm.colour, "action": tm.action, "size": tm.size,
                "track": np.array([_object_state(tm, int(f), world_size, m["fps"])[:2] for f in idx]) * scale - 0.5,
                "source_track": np.array([_object_state(shot.main, int(f), world_size, m["fps"])[:2] for f in idx]) * scale - 0.5,
                "source_area": _area(src, tm.colour), "target_area": _area(tgt, tm.colour),
            })  # fmt: skip
            n += 1
    return out


def true_flow_warp_error(video: np.ndarray, pair: dict) -> float:
    """Mean absolute error between each frame and the next one moved back along the
    true motion (the edited object's displacement inside its mask, zero elsewhere),
    over pixels that are not (dis)occluded: a flicker measure that ignores real motion."""
    errs = []
    t, h, w = video.shape[:3]
    track = pair["track"]
    for k in range(t - 1):
        d = track[k + 1] - track[k]
        obj = pair["mask"][k] | pair["mask"][k + 1]
        a = video[k].astype(np.float32)
        b = video[k + 1].astype(np.float32)
        shifted = np.roll(b, (-int(round(d[1])), -int(round(d[0]))), (0, 1))
        moved = np.where(pair["mask"][k][..., None], shifted, b)
        valid = ~obj | pair["mask"][k]
        errs.append(float(np.abs(a - moved)[valid].mean()))
    return float(np.mean(errs))


def edit_scores(edited: np.ndarray, pair: dict, judge=None, derived_mask: np.ndarray | None = None, drag_endpoint=None) -> dict:
    """Scores of one edited clip against its pair (see the module docstring);
    ``drag_endpoint``: the (x, y) a drag commanded for the last frame."""
    from vidfm.metrics.generation import flicker, psnr_ssim_uint8, region_psnr
    from vidfm.tasks.generation_eval import COLOUR_NAMES, colour_masks, trajectories

    outside = ~pair["mask"]
    out = {
        "psnr_outside_target": region_psnr(edited, pair["target"], outside),
        "psnr_outside_source": region_psnr(edited, pair["source"], outside),
        "psnr_full_target": region_psnr(edited, pair["target"]),
        "ssim_full_target": psnr_ssim_uint8(pair["target"][None], edited[None])[1],
        "warp_error": true_flow_warp_error(edited, pair),
        "flicker": flicker(edited[None]),
    }
    if outside.any():
        # SSIM outside the mask: the edited frames with the mask region taken from the target
        composite = np.where(pair["mask"][..., None], pair["target"], edited)
        out["ssim_outside_target"] = psnr_ssim_uint8(pair["target"][None], composite[None])[1]
    if derived_mask is not None:
        m = derived_mask > 0.5
        union = (m | pair["mask"]).sum()
        out["mask_iou"] = float((m & pair["mask"]).sum() / union) if union else 1.0
    masks = colour_masks(edited[None])
    colour_id = COLOUR_NAMES.index(pair["colour"])
    if judge is not None:
        kind = pair["kind"]
        rec = {"shape": pair["shape"], "colour": pair["colour"], "action": pair["action"]}
        if kind == "colour":
            out["success"] = judge.score(edited[None], [rec])["colour_accuracy"]
        elif kind == "shape":
            out["success"] = float(judge.predict_shapes(masks, [colour_id])[0] == pair["shape"])
        elif kind == "action" and judge.classifier is not None:
            out["success"] = float(judge.predict_actions(edited[None])[0] == pair["action"])
    if pair["kind"] == "size":
        area = float((masks[0] == colour_id).sum())
        out["success"] = float(abs(area - pair["target_area"]) < abs(area - pair["source_area"]))
    if drag_endpoint is not None:
        last = trajectories(masks, [colour_id])[0][-1, :2]
        out["drag_endpoint_error"] = float(np.hypot(*(last - np.asarray(drag_endpoint)))) if not np.isnan(last[0]) else float("nan")
        out["drag_object_lost"] = float(np.isnan(last[0]))
    return out
