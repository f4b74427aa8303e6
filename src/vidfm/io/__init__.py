"""Video input/output: decoding and probing (PyAV), frame samplers, writers."""

from vidfm.io.probe import VideoInfo, probe
from vidfm.io.reader import VideoReader, read_video
from vidfm.io.writer import contact_sheet, save_contact_sheet, write_gif, write_video

__all__ = [
    "VideoInfo",
    "VideoReader",
    "contact_sheet",
    "probe",
    "read_video",
    "save_contact_sheet",
    "write_gif",
    "write_video",
]
