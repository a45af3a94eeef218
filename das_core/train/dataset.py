"""The torch dataset: decode a sample's videos into uint8 tensors of its bucket, batched per bucket.

Frame sampling and bucket choice follow the reference trainer (`das_core.train.layout`); resizing to
the bucket uses the project's one aspect policy (`das_core.tracking.video.fit_frames`: letterbox, never
stretch), applied identically to the video, its tracking video and its image so they stay aligned.
Items stay uint8 until they reach the device (4x less to copy between loader workers and the GPU
than float32); `to_model_range` turns them into the floats the VAE expects.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from das_core.train.layout import (
    DatasetError,
    Sample,
    nearest_frame_bucket,
    nearest_resolution,
    reference_frame_indices,
)

Bucket = tuple[int, int, int]  # (frames, height, width)


class TrackingVideoDataset(Dataset):
    """Samples decoded to uint8 [F, 3, H, W] video and tracking, [1, 3, H, W] image, plus the prompt."""

    def __init__(
        self,
        samples: list[Sample],
        *,
        height_buckets: list[int],
        width_buckets: list[int],
        frame_buckets: list[int],
        max_num_frames: int = 49,
    ) -> None:
        if not samples:
            raise DatasetError("the dataset has no samples")
        self.samples = samples
        self.height_buckets = list(height_buckets)
        self.width_buckets = list(width_buckets)
        self.frame_buckets = list(frame_buckets)
        self.max_num_frames = max_num_frames
        self._buckets: dict[int, Bucket] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def bucket_of(self, index: int) -> Bucket:
        """The (frames, height, width) bucket of sample `index`; probes the file only when buckets differ."""
        if index not in self._buckets:
            if len(self.frame_buckets) == len(self.height_buckets) == len(self.width_buckets) == 1:
                self._buckets[index] = (self.frame_buckets[0], self.height_buckets[0], self.width_buckets[0])
            else:
                num_frames, height, width = _probe(self.samples[index].video)
                self._buckets[index] = self._bucket(num_frames, height, width)
        return self._buckets[index]

    def __getitem__(self, index: int) -> dict:
        from das_core.tracking.video import fit_frames, read_video

        sample = self.samples[index]
        video = read_video(sample.video)
        frames, height, width = self._bucket(*video.shape[:3])
        indices = reference_frame_indices(video.shape[0], frames)
        tracking = read_video(sample.tracking)
        if tracking.shape[0] <= indices[-1]:
            raise DatasetError(
                f"{sample.tracking}: tracking video has {tracking.shape[0]} frames, its video {video.shape[0]}"
            )
        video, tracking = video[indices], tracking[indices]
        if sample.image is not None:
            image = _read_image(sample.image)[None]
        else:
            image = video[:1]
        if video.shape[1:3] != (height, width):
            video = fit_frames(video, width=width, height=height)
        if tracking.shape[1:3] != (height, width):
            tracking = fit_frames(tracking, width=width, height=height)
        if image.shape[1:3] != (height, width):
            image = fit_frames(image, width=width, height=height)
        return {
            "prompt": sample.prompt,
            "video": _channels_first(video),
            "tracking": _channels_first(tracking),
            "image": _channels_first(image),
        }

    def _bucket(self, num_frames: int, height: int, width: int) -> Bucket:
        frames = nearest_frame_bucket(num_frames, self.frame_buckets, self.max_num_frames)
        return (frames, *nearest_resolution(height, width, self.height_buckets, self.width_buckets))


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices whose samples share a bucket, shuffled per epoch from a seed.

    Like the reference's BucketSampler, a batch never mixes sizes and the last, smaller batch of a
    bucket is kept; unlike it, the sampler yields indices, so loader workers do the decoding.
    """

    def __init__(self, dataset: TrackingVideoDataset, batch_size: int, *, shuffle: bool = True, seed: int = 0) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle order the next iteration uses (resume replays it exactly)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        order = list(range(len(self.dataset)))
        rng = random.Random(self.seed * 100003 + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        pending: dict[Bucket, list[int]] = {}
        for index in order:
            bucket = pending.setdefault(self.dataset.bucket_of(index), [])
            bucket.append(index)
            if len(bucket) == self.batch_size:
                yield list(bucket)
                bucket.clear()
        for bucket in pending.values():
            if bucket:
                yield list(bucket)

    def __len__(self) -> int:
        counts: dict[Bucket, int] = {}
        for index in range(len(self.dataset)):
            bucket = self.dataset.bucket_of(index)
            counts[bucket] = counts.get(bucket, 0) + 1
        return sum(-(-count // self.batch_size) for count in counts.values())


def collate(items: list[dict]) -> dict:
    """Stack one bucket's items: prompts list, uint8 videos [B, F, 3, H, W], images [B, 1, 3, H, W]."""
    shapes = {tuple(item["video"].shape) for item in items}
    if len(shapes) > 1:
        raise DatasetError(f"one batch mixes video sizes {sorted(shapes)}: the bucket probe misread a video header")
    return {
        "prompts": [item["prompt"] for item in items],
        "videos": torch.stack([item["video"] for item in items]),
        "trackings": torch.stack([item["tracking"] for item in items]),
        "images": torch.stack([item["image"] for item in items]),
    }


def to_model_range(frames: torch.Tensor, dtype: torch.dtype, *, signed: bool = True) -> torch.Tensor:
    """uint8 frames to `dtype`: [-1, 1] when `signed` (the VAE's range), else [0, 1]."""
    values = frames.to(dtype) / 255.0
    return values * 2.0 - 1.0 if signed else values


def _channels_first(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2)))


def _read_image(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _probe(path) -> tuple[int, int, int]:
    """(frames, height, width) from the container header, without decoding the video."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    finally:
        reader.close()
    width, height = meta["size"]
    num_frames = round(meta.get("duration", 0) * meta.get("fps", 0)) or 1
    return num_frames, height, width
