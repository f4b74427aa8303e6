"""Long videos built from synthetic-world clips, with a needle (NIAVH).

A *haystack* is world clips played one after another until the wanted length. A *needle*
is one more clip (or one frame of it) holding an object whose colour appears nowhere else
in the haystack, inserted at a chosen depth (0 = the start, 1 = the end). Questions about
it have exact answers: its shape, what it does (clip needles) and when it is on screen.
Everything is streamed: one decoded frame is held at a time, whatever the length.

Output: ``OUT.mp4`` and ``OUT.json`` (the clips with their times, the needle, the questions).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vidfm.errors import ConfigError
from vidfm.files import atomic_write_text

NEEDLE_KINDS = ("clip", "frame")


def _colours(meta: dict) -> set[str]:
    objs = [o for shot in meta["shots"] for o in shot["objects"]]
    return {o["colour"] for o in objs} | {o["new_colour"] for o in objs if o.get("new_colour")}


def _needle_candidates(metas: list[dict], colour: str) -> list[tuple[dict, dict]]:
    """Single-shot clips where exactly one object shows ``colour``, keeps it and is on
    screen from the first frame to the last."""
    out = []
    for m in metas:
        if len(m["shots"]) != 1:
            continue
        objs = [o for o in m["shots"][0]["objects"] if colour in (o["colour"], o.get("new_colour"))]
        if len(objs) == 1 and objs[0]["colour"] == colour and objs[0]["action"] not in ("change_colour", "appear", "disappear"):
            out.append((m, objs[0]))
    return out


def needle_pools(metas: list[dict]) -> dict[str, tuple[list, list]]:
    """Per colour: (needle candidates (meta, object), haystack clips without the colour)."""
    from vidfm.data.synthetic import COLOURS

    pools = {}
    for colour in COLOURS:
        cands, hay = _needle_candidates(metas, colour), [m for m in metas if colour not in _colours(m)]
        if cands and hay:
            pools[colour] = (cands, hay)
    if not pools:
        raise ConfigError("this world has no clip whose colour could be a needle (too few videos); synthesise a bigger world")
    return pools


def pick_needle(pools: dict, rng: np.random.Generator) -> tuple[str, tuple[dict, dict], list[dict]]:
    """(colour, (needle meta, needle object), haystack clips) at random."""
    colour = str(rng.choice(sorted(pools)))
    cands, hay = pools[colour]
    return colour, cands[int(rng.integers(len(cands)))], hay


def needle_sequence(pools: dict, clips: int, rng: np.random.Generator) -> dict:
    """``clips`` world clips in a row, one of them the needle: ``{paths, position, questions}``
    (the needle's shape and action; what the memory bridge learns to keep)."""
    colour, (meta, obj), hay = pick_needle(pools, rng)
    others = [hay[int(j)]["path"] for j in rng.integers(len(hay), size=clips - 1)]
    pos = int(rng.integers(clips))
    questions = [q for q in _questions({"kind": "clip", "colour": colour, "object": obj}, 0.0, 0.0) if q["type"] != "when"]
    return {"paths": others[:pos] + [meta["path"]] + others[pos:], "position": pos, "questions": questions}


def plan_haystack(metas: list[dict], seconds: float, fps: float, depth: float | None, needle: str = "clip", seed: int = 0) -> dict:
    """Which clips, in which order, and where the needle goes (no decoding)."""
    if seconds <= 0:
        raise ConfigError(f"the video length must be positive, got {seconds} s")
    if depth is not None and not 0.0 <= depth <= 1.0:
        raise ConfigError(f"the needle depth must be in [0, 1] (0 = start, 1 = end), got {depth}")
    if needle not in NEEDLE_KINDS:
        raise ConfigError(f"needle must be one of {', '.join(NEEDLE_KINDS)}, got {needle!r}")
    rng = np.random.default_rng(seed)
    chosen = pick_needle(needle_pools(metas), rng) if depth is not None else None
    pool = chosen[2] if chosen else metas
    needle_frames = 0
    if chosen:
        needle_frames = chosen[1][0]["num_frames"] if needle == "clip" else 1
        if needle_frames / fps > seconds:
            raise ConfigError(f"a {seconds:g} s video cannot hold a needle of {needle_frames / fps:.1f} s; ask for a longer video")
    order, total = [], 0
    target = int(round(seconds * fps)) - needle_frames
    while total < target:
        m = pool[int(rng.integers(len(pool)))]
        order.append(m)
        total += m["num_frames"]
    plan = {"fps": fps, "clips": order, "needle": None}
    if chosen:
        colour, (meta, obj), _ = chosen
        # insert between clips, at the boundary nearest to the wanted depth
        starts = np.cumsum([0] + [m["num_frames"] for m in order])
        at = int(np.argmin(np.abs(starts - depth * starts[-1])))
        plan["needle"] = {"kind": needle, "depth": depth, "position": at, "meta": meta, "colour": colour, "object": obj}
    return plan


def _frames(plan: dict, size: int, log: list):
    """Every frame of the haystack in order; ``log`` gets (what, first frame, frame count)."""
    from vidfm.io.reader import VideoReader

    needle = plan["needle"]
    pieces = [("clip", m) for m in plan["clips"]]
    if needle:
        pieces.insert(needle["position"], ("needle", needle["meta"]))
    pos = 0
    for what, meta in pieces:
        with VideoReader(meta["path"], size=(size, size)) as r:
            if what == "needle" and needle["kind"] == "frame":
                frames = iter([r[len(r) // 2]])
            else:
                frames = (f for _, f in r.stream())
            n = 0
            for f in frames:
                yield f
                n += 1
        log.append((what, meta, pos, n))
        pos += n


def _questions(needle: dict, start: float, end: float) -> list[dict]:
    """The world's own question forms and answers (``qa_for``), about the needle."""

    c, obj = needle["colour"], needle["object"]
    qs = [{"type": "shape", "question": f"what shape is the {c} object?", "answer": obj["shape"]},
          {"type": "when", "question": f"when is the {c} {obj['shape']} on screen?", "answer": f"from {start:.1f} s to {end:.1f} s", "segment": [start, end]}]  # fmt: skip
    if needle["kind"] == "clip":
        qs.append({"type": "action", "question": f"what does the {c} {obj['shape']} do?", "answer": obj["action"].replace("_", " ")})
    return qs


def make_haystack(world, out, minutes: float, depth: float | None = 0.5, needle: str = "clip", seed: int = 0, size: int | None = None) -> dict:
    """Write ``out`` (an MP4) and its sidecar JSON; return the sidecar's contents."""
    from vidfm.data.datasets import DataSource
    from vidfm.io.writer import write_video

    source = DataSource(world)
    if not source.is_world:
        raise ConfigError(f"{world}: a haystack is built from a synthetic world (make one with 'vidfm synth')")
    w = source.world()
    fps = float(w.summary.get("fps", 8))
    plan = plan_haystack(w.metadata(), minutes * 60.0, fps, depth, needle, seed)
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ConfigError(f"{out}: the haystack is written as an MP4; name it .mp4")
    log: list = []
    write_video(out, _frames(plan, size or int(w.summary.get("size", 64)), log), fps=fps, crf=23)
    total = sum(n for *_, n in log)
    info = {"video": str(out), "fps": fps, "duration": total / fps, "seed": seed,
            "clips": [{"source": m["path"], "start": p / fps, "end": (p + n) / fps, "needle": what == "needle"} for what, m, p, n in log]}  # fmt: skip
    if plan["needle"]:
        nd = plan["needle"]
        _, _, p, n = next(entry for entry in log if entry[0] == "needle")
        obj = nd["object"]
        start, end = p / fps, (p + n) / fps  # the needle object is on screen all through its clip
        info["needle"] = {"kind": nd["kind"], "depth": nd["depth"], "actual_depth": p / max(total - n, 1), "source": nd["meta"]["path"],
                          "colour": nd["colour"], "shape": obj["shape"], "action": obj["action"], "start": start, "end": end}  # fmt: skip
        info["questions"] = _questions(nd, start, end)
    atomic_write_text(out.with_suffix(".json"), json.dumps(info, indent=2))
    return info
