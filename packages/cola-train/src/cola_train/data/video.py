"""mp4 (h264) encoding and decoding of uint8 RGB frames with PyAV.

Frames are stored as lossless H.264 in 4:4:4 chroma (libx264, qp 0, yuv444p): the only loss is the RGB <->
YUV rounding, at most 1 level per channel (mean 0.03 on PushT frames), against a mean of ~1 level and a
worst case of ~150 for the default 4:2:0 at crf 18, which smears PushT's thin edges and small agent. Any
ffmpeg-based reader (LeRobot, torchcodec, PyAV) decodes it; a few hardware and browser decoders do not.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from cola_train.data.episode import DatasetError

CODEC = "h264"
PIXEL_FORMAT = "yuv444p"


def _pyav() -> ModuleType:
    """PyAV, imported where a video is read or written: datasets that store frames as images (LeRobot's
    "image" features; ``collect_pusht(..., use_videos=False)``) load and train without it."""
    try:
        import av
        import av.video.reformatter
    except ImportError as error:
        raise ImportError(
            f"reading or writing mp4 frames needs PyAV, which does not import here ({error}): "
            "`pip install av`, or store frames as images (`cola-train collect pusht --no-videos`, "
            "`collect_pusht(..., use_videos=False)`)"
        ) from error
    return av


def encode_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write uint8 [T, H, W, 3] frames to `path` as an h264 mp4."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [T>0, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    av = _pyav()
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = PIXEL_FORMAT
        # One encoder thread: collection already runs one worker per core.
        stream.options = {"qp": "0", "preset": "veryfast", "threads": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def decode_video(path: Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Frames [start, stop) (default: all) of the first video stream in `path` as uint8 [T, H, W, 3], fewer
    where the video ends first; DatasetError if unreadable or no frame is in the range."""
    fix = "the file is corrupt or truncated: re-create it (re-run the collection or re-download the dataset)"
    av = _pyav()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{path} holds no video stream; {fix}")
            # One reformatter for the whole video keeps its cached colour converter; frame.to_ndarray(format=)
            # builds a fresh one per frame, five times slower on small frames, with the same pixels.
            reformatter = av.video.reformatter.VideoReformatter()
            frames = []
            for number, frame in enumerate(container.decode(video=0)):
                if stop is not None and number >= stop:
                    break
                # Frames before `start` are decoded (h264 needs them) but not converted.
                if number >= start:
                    frames.append(reformatter.reformat(frame, format="rgb24").to_ndarray())
    except av.FFmpegError as error:
        raise DatasetError(f"could not decode video {path} ({error}); {fix}") from error
    if not frames:
        where = f" from frame {start} on" if start else ""
        raise DatasetError(f"video {path} holds no frames{where}; {fix}")
    return np.stack(frames)
