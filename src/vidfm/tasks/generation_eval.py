"""Does a generated clip show what was asked? VBench-style semantic checks on the world.

Prompts come from a world split (the main object's shape, colour and action, and the
first caption as the prompt). Two judges trained on the world look at each generated
clip:

- a vidfm action classifier: is the predicted action the prompted one?
- a video-text retrieval model: among captions that differ from the prompt in one
  attribute only (every shape, every colour, every action), does the prompted one score
  highest? That gives shape, colour and action accuracy, and all three at once; plus the
  mean video-prompt cosine similarity (CLIPSIM-style).

Judges are imperfect, so the same judges scored on the real clips (and on VAE
reconstructions of them) are the ceiling to read generated scores against; chance is
1/4 (shape), 1/6 (colour), 1/12 (action).
"""

from __future__ import annotations

import numpy as np
import torch

from vidfm.data.synthetic import ACTIONS, COLOURS, SHAPES, VERB_PHRASES


def world_prompts(world, split: str = "test", limit: int | None = None) -> list[dict]:
    """Records with ``prompt``, ``shape``, ``colour``, ``action``, ``new_colour`` (and the
    real clip's path/start/end) for single-shot videos of ``split``."""
    from vidfm.data.datasets import SyntheticWorld

    meta = {m["video_id"]: m for m in SyntheticWorld(world).metadata()}
    from vidfm.tasks.generate import generation_records

    out = []
    for r in generation_records(world, split):
        obj = meta[r["video_id"]]["shots"][0]["objects"][0]
        out.append({**r, "prompt": _describe(obj["shape"], obj["colour"], obj["action"], obj.get("new_colour")), "shape": obj["shape"],
                    "colour": obj["colour"], "action": obj["action"], "new_colour": obj.get("new_colour")})  # fmt: skip
    return out[:limit] if limit else out


def _describe(shape: str, colour: str, action: str, new_colour: str | None) -> str:
    phrase = VERB_PHRASES[action][0].format(new=new_colour or "another colour")
    return f"a {colour} {shape} {phrase}"


def real_clips(records: list[dict], num_frames: int, size: int) -> np.ndarray:
    """The ground-truth clips, laid out as the generator's (N, T, H, W, 3) uint8."""
    from vidfm.tasks.generate import ClipDataset

    ds = ClipDataset(records, num_frames, size)
    return np.stack([((ds.load(i)["video"] + 1) * 127.5).round().byte().permute(1, 2, 3, 0).numpy() for i in range(len(records))])


class SemanticJudge:
    def __init__(self, classifier_path, retrieval_path):
        from vidfm.files import model_folder
        from vidfm.retrieval.embedder import Embedder
        from vidfm.tasks.classify import VideoClassifier

        self.classifier = VideoClassifier.from_pretrained(model_folder(classifier_path)).eval()
        self.retrieval = Embedder(retrieval_path)

    @torch.no_grad()
    def score(self, videos: np.ndarray, records: list[dict]) -> dict:
        from vidfm.data.transforms import clips_from_arrays

        clips = clips_from_arrays(videos, self.classifier.num_frames, self.classifier.image_size)
        predicted = [self.classifier.classes[i] for i in torch.cat([self.classifier(c) for c in clips.split(32)]).argmax(-1).tolist()]
        emb = self.retrieval.embed_arrays(videos)
        hits = {"shape": [], "colour": [], "action": []}
        sims = []
        for e, r in zip(emb, records):
            sims.append(float(e @ self.retrieval.encode_text([r["prompt"]])[0]))
            for attr, values in (("shape", SHAPES), ("colour", tuple(COLOURS)), ("action", ACTIONS)):
                options = [{**r, attr: v} for v in values]
                texts = [_describe(o["shape"], o["colour"], o["action"], o["new_colour"]) for o in options]
                best = values[int(np.argmax(self.retrieval.encode_text(texts) @ e))]
                hits[attr].append(best == r[attr])
        all3 = np.logical_and.reduce([hits[a] for a in hits])
        return {
            "classifier_action_accuracy": float(np.mean([p == r["action"] for p, r in zip(predicted, records)])),
            **{f"retrieval_{a}_accuracy": float(np.mean(h)) for a, h in hits.items()},
            "retrieval_all_accuracy": float(all3.mean()),
            "prompt_similarity": float(np.mean(sims)),
            "n": len(records),
        }
