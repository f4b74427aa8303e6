"""vidfm: a library and command-line tool for video foundation models."""

from vidfm.errors import ConfigError, DatasetError, VideoDecodeError, VidfmError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DatasetError", "VideoDecodeError", "VidfmError", "__version__"]
