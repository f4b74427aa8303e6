"""One exception hierarchy, so callers (and the CLI) can tell user mistakes from bugs.

Every message names the file or setting at fault and what to do about it; the CLI prints
``VidfmError`` messages as one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class VidfmError(Exception):
    """Base class for every error caused by input, configuration or environment."""


class VideoDecodeError(VidfmError):
    """A video file is missing, unreadable, corrupt, truncated or has no video frames."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class DatasetError(VidfmError):
    """A dataset folder or annotation file is missing, empty or malformed."""


class ConfigError(VidfmError):
    """An argument or configuration value is out of range or inconsistent."""
