"""The torch dataset on a real synthesised sample, and bucket batching."""

from __future__ import annotations

import torch

from das_core.train.dataset import BucketBatchSampler, TrackingVideoDataset, collate, to_model_range
from das_core.train.layout import load_samples


def test_items_are_uint8_channels_first_at_the_bucket(tiny_dataset):
    dataset = TrackingVideoDataset(
        load_samples(tiny_dataset, image_column="images.txt"),
        height_buckets=[64],
        width_buckets=[96],
        frame_buckets=[5],
        max_num_frames=5,
    )
    item = dataset[0]
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (5, 3, 64, 96)
    assert item["tracking"].shape == (5, 3, 64, 96) and item["image"].shape == (1, 3, 64, 96)
    batch = collate([item, item])
    assert batch["videos"].shape == (2, 5, 3, 64, 96) and batch["prompts"] == [item["prompt"]] * 2
    signed = to_model_range(batch["trackings"], torch.float32)
    unit = to_model_range(batch["trackings"], torch.float32, signed=False)
    assert signed.min() >= -1 and signed.max() <= 1 and unit.min() >= 0
    torch.testing.assert_close(signed, unit * 2 - 1)


def test_buckets_are_probed_and_other_sizes_letterboxed(tiny_dataset):
    dataset = TrackingVideoDataset(
        load_samples(tiny_dataset),
        height_buckets=[32, 480],
        width_buckets=[96, 720],
        frame_buckets=[5, 49],
        max_num_frames=49,
    )
    assert dataset.bucket_of(0) == (5, 32, 96)  # read from the MP4 header: 5 frames of 96 x 64
    item = dataset[0]
    assert item["video"].shape == (5, 3, 32, 96)
    # 96 x 64 fits 96 x 32 as 48 x 32 centred: black bars left and right, never stretched
    assert item["video"][:, :, :, :20].max() == 0 and item["video"][:, :, :, -20:].max() == 0
    assert item["video"][:, :, :, 30:66].float().mean() > 10


class _Sizes:
    """Stands in for a dataset: only `bucket_of` and `len` matter to the sampler."""

    def __init__(self, buckets):
        self.buckets = buckets

    def __len__(self):
        return len(self.buckets)

    def bucket_of(self, index):
        return self.buckets[index]


def test_batches_never_mix_buckets_and_keep_the_remainder():
    sizes = _Sizes([(49, 480, 720)] * 5 + [(49, 720, 480)] * 3)
    sampler = BucketBatchSampler(sizes, batch_size=2, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5  # 3 + 2, remainders kept as the reference does
    assert all(len({sizes.bucket_of(i) for i in batch}) == 1 for batch in batches)
    assert sorted(i for batch in batches for i in batch) == list(range(8))
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first  # an epoch's order is reproducible, so a resume replays it
