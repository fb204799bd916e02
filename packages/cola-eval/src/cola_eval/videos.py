"""Writing frames as PNG, GIF (Pillow) and MP4 (PyAV), and laying clips side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


def to_frames(video: torch.Tensor) -> np.ndarray:
    """uint8 [T, C, H, W] (or float in [-1, 1]) -> uint8 [T, H, W, 3] for writing."""
    if video.is_floating_point():
        video = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    frames = video.cpu().permute(0, 2, 3, 1).numpy()
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def side_by_side(*videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """Clips [T, H, W, 3] of one length joined left to right with a white gap."""
    t, h = videos[0].shape[:2]
    spacer = np.full((t, h, gap, 3), 255, dtype=np.uint8)
    parts = []
    for video in videos:
        parts += [video, spacer]
    return np.concatenate(parts[:-1], axis=2)


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement so small frames stay crisp in viewers."""
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def write_gif(frames: np.ndarray, path: str | Path, fps: float = 8.0) -> Path:
    path = Path(path)
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path


def write_mp4(frames: np.ndarray, path: str | Path, fps: int = 8) -> Path:
    import av

    path = Path(path)
    # H.264 with yuv420p needs even sizes.
    h, w = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def labelled_row(label: str, image: np.ndarray, label_width: int = 150) -> np.ndarray:
    """Prefix an image [H, W, 3] with a white panel carrying `label` (Pillow's built-in font)."""
    panel = Image.new("RGB", (label_width, image.shape[0]), "white")
    ImageDraw.Draw(panel).multiline_text((4, 4), label, fill="black")
    return np.concatenate([np.asarray(panel), image], axis=1)
