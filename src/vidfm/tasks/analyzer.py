"""Analyzer x LLM: a training-free Video-LLM. Analysers turn the video into text, and a
language model answers from that text (SPEC's "analyzer x LLM" architecture).

What is measured, always: duration, frame rate and size; shots and cuts (the fast colour
histogram detector); keyframe times (SceneTilling over colour histograms); the colours that
cover the frames, by name; when things move (mean frame difference over time). Optionally:
a vidfm classifier's top labels, a video-text model's zero-shot scores over given labels,
and a grounding model's time range for a "when" question. The real SmolLM2-135M-Instruct
(from PyPI) answers without any training.
"""

from __future__ import annotations

import numpy as np

from vidfm.errors import ConfigError

PALETTE = {  # name: RGB; pixels are named by their nearest entry
    "red": (220, 40, 40), "green": (40, 180, 70), "blue": (50, 90, 230), "yellow": (235, 215, 40), "purple": (160, 70, 210),
    "orange": (245, 140, 30), "pink": (240, 130, 180), "brown": (130, 80, 40), "white": (240, 240, 240), "grey": (128, 128, 128),
    "black": (15, 15, 15),
}  # fmt: skip
SYSTEM = ("You answer questions about a video using only the facts below, which automatic analysers measured. "
          "Be brief; give times in seconds. If the facts do not say, say you cannot tell.")  # fmt: skip


def colour_names(frames: np.ndarray, min_share: float = 0.01) -> list[tuple[str, float]]:
    """(name, share of pixels) of the palette colours that cover the frames, most first."""
    names = list(PALETTE)
    palette = np.array([PALETTE[n] for n in names], dtype=np.float32)
    pixels = frames.reshape(-1, 3).astype(np.float32)[:: max(1, frames[..., 0].size // 20000)]
    nearest = np.argmin(((pixels[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
    shares = np.bincount(nearest, minlength=len(names)) / len(nearest)
    return [(names[i], float(shares[i])) for i in np.argsort(-shares) if shares[i] >= min_share]


def motion_profile(frames: np.ndarray, times: np.ndarray) -> list[tuple[float, float]]:
    """Time ranges where the picture changes clearly (mean absolute frame difference above
    half its maximum)."""
    if len(frames) < 2:
        return []
    diff = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    if diff.max() < 1.0:
        return []
    active = diff > 0.5 * diff.max()
    ranges, start = [], None
    for i, on in enumerate(active):
        if on and start is None:
            start = i
        if (not on or i == len(active) - 1) and start is not None:
            end = i + 1 if on else i
            ranges.append((float(times[start]), float(times[min(end, len(times) - 1)])))
            start = None
    return ranges


class Analyzer:
    def __init__(self, lm: str = "smollm2", classifier=None, video_text=None, labels=None, grounding=None, max_new_tokens: int = 64):
        from vidfm.models.lm import load_lm

        self.lm, self.tokenizer = load_lm(lm)
        self.max_new_tokens = max_new_tokens
        self.classifier = None
        if classifier:
            from vidfm.tasks.classify import VideoClassifier

            self.classifier = VideoClassifier.from_pretrained(classifier)
        self.labels = [x.strip() for x in labels.split(",") if x.strip()] if labels else []
        if video_text and not self.labels:
            raise ConfigError("--video-text needs --labels (comma-separated) to score")
        self.embedder = None
        if video_text:
            from vidfm.retrieval.embedder import Embedder

            self.embedder = Embedder(video_text)
        self.grounder = None
        if grounding:
            from vidfm.tasks.ground import Grounder

            self.grounder = Grounder(grounding)

    def describe(self, video) -> dict:
        """``{"text": facts as sentences, "duration": seconds, ...}`` for one video."""
        from vidfm.io.probe import probe
        from vidfm.io.reader import VideoReader
        from vidfm.io.samplers import fps_indices
        from vidfm.shots import detect_shots
        from vidfm.shots.scenes import detect_scenes

        info = probe(video)
        with VideoReader(video, size=(64, 64)) as r:
            idx = fps_indices(timestamps=r.timestamps, dst_fps=4.0) if len(r) > 1 else np.zeros(1, dtype=int)
            frames, times = r.get_frames(idx), r.timestamps[idx]
        shots = detect_shots(video, "histogram")
        scenes = detect_scenes(video, fps=2.0).as_dict()["scenes"]
        facts = [f"The video lasts {info.duration:.1f} s at {info.fps:.0f} frames per second, {info.width}x{info.height} pixels"
                 + (", with sound." if info.has_audio else ", without sound.")]  # fmt: skip
        cuts = [t["time"] for t in shots.transitions]
        facts.append("It is one continuous shot." if not cuts else f"It has {len(shots.ranges)} shots; cuts at " + ", ".join(f"{t:.1f} s" for t in cuts) + ".")
        facts.append("Keyframes at " + ", ".join(f"{s['keyframe_time']:.1f} s" for s in scenes) + ".")
        colours = colour_names(frames)
        if colours:
            facts.append("Colours on screen: " + ", ".join(f"{n} ({100 * s:.0f} %)" for n, s in colours[:5]) + ".")
        moving = motion_profile(frames, times)
        facts.append("Most motion " + ", ".join(f"from {a:.1f} s to {b:.1f} s" for a, b in moving) + "." if moving else "Nothing moves clearly.")
        if self.classifier is not None:
            from vidfm.tasks.classify import predict

            top = predict(self.classifier, video, top=3)
            facts.append("An action classifier says: " + ", ".join(f"{lab.replace('_', ' ')} ({p:.2f})" for lab, p in top) + ".")
        if self.embedder is not None:
            from vidfm.tasks.retrieval import zero_shot_classifier

            scores = self.embedder.embed_video(video) @ zero_shot_classifier(self.embedder, self.labels).T
            order = np.argsort(-scores)[:3]
            facts.append("A video-text model matches: " + ", ".join(f"{self.labels[i]} ({scores[i]:.2f})" for i in order) + ".")
        return {"video": str(video), "duration": info.duration, "facts": facts}

    def grounding_fact(self, video, question: str) -> str | None:
        if self.grounder is None or not question.lower().lstrip().startswith("when"):
            return None
        g = self.grounder.ground(video, [question])[0]
        return f"A grounding model places it from {g['start']:.1f} s to {g['end']:.1f} s (confidence {g['confidence']:.2f})."

    def reply(self, facts: dict, messages: list[dict], streamer=None) -> str:
        from vidfm.models.lm import chat_reply

        if not messages or not str(messages[-1]["content"]).strip():
            raise ConfigError("the question is empty; ask something about the video")
        lines = list(facts["facts"])
        extra = self.grounding_fact(facts["video"], messages[-1]["content"])
        if extra:
            lines.append(extra)
        system = {"role": "system", "content": SYSTEM + "\nFacts:\n" + "\n".join(f"- {x}" for x in lines)}
        return chat_reply(self.lm, self.tokenizer, [system, *messages], self.max_new_tokens, streamer)

    def assistant(self, video) -> "AnalyzerAssistant":
        return AnalyzerAssistant(self, video)


class AnalyzerAssistant:
    """The analyzer bound to one video (its facts computed once); the same interface as
    ``VideoAssistant``."""

    def __init__(self, analyzer: Analyzer, video):
        self.analyzer, self.facts = analyzer, analyzer.describe(video)
        self.duration, self.note = self.facts["duration"], None

    @property
    def tokenizer(self):
        return self.analyzer.tokenizer

    def ask(self, questions: list[str]) -> dict:
        answers = [self.analyzer.reply(self.facts, [{"role": "user", "content": q}]) for q in questions]
        return {"video": self.facts["video"], "duration": self.duration, "facts": self.facts["facts"],
                "answers": [{"question": q, "answer": a} for q, a in zip(questions, answers)]}  # fmt: skip

    def reply(self, messages: list[dict], streamer=None) -> str:
        return self.analyzer.reply(self.facts, messages, streamer)
