"""The trainer keeps the reference flags: names, defaults, and the combinations it refuses."""

from __future__ import annotations

import pytest

from das_core.train.args import REFERENCE_BUCKETS, build_parser, parse_args

# the flags users know from the reference trainer (das_core/model/README.md, Flags)
SPEC_FLAGS = """--pretrained_model_name_or_path --data_root --dataset_file --caption_column --video_column
--tracking_column --tracking_map_path --num_tracking_blocks --height_buckets --width_buckets --frame_buckets
--max_num_frames --dataloader_num_workers --pin_memory --validation_prompt --validation_images
--validation_prompt_separator --num_validation_videos --validation_epochs --seed --mixed_precision --output_dir
--train_batch_size --max_train_steps --num_train_epochs --checkpointing_steps --checkpoints_total_limit
--resume_from_checkpoint --gradient_accumulation_steps --gradient_checkpointing --learning_rate --scale_lr
--lr_scheduler --lr_warmup_steps --lr_num_cycles --lr_power --enable_slicing --enable_tiling --optimizer --beta1
--beta2 --weight_decay --epsilon --max_grad_norm --noised_image_dropout --allow_tf32 --report_to --nccl_timeout
--tracker_name --logging_dir""".split()

# the reference trainer's defaults (training/args.py)
REFERENCE_DEFAULTS = {
    "caption_column": "text",
    "video_column": "video",
    "tracking_column": None,
    "num_tracking_blocks": None,  # the reference's 18 when converting plain CogVideoX, else the checkpoint's
    "height_buckets": REFERENCE_BUCKETS,
    "width_buckets": REFERENCE_BUCKETS,
    "frame_buckets": [49],
    "max_num_frames": 49,
    "dataloader_num_workers": 0,
    "pin_memory": False,
    "validation_prompt_separator": ":::",
    "num_validation_videos": 1,
    "validation_epochs": 50,
    "seed": None,
    "mixed_precision": None,
    "output_dir": "cogvideox-sft",
    "train_batch_size": 4,
    "max_train_steps": None,
    "num_train_epochs": 1,
    "checkpointing_steps": 500,
    "checkpoints_total_limit": None,
    "resume_from_checkpoint": None,
    "gradient_accumulation_steps": 1,
    "gradient_checkpointing": False,
    "learning_rate": 1e-4,
    "scale_lr": False,
    "lr_scheduler": "constant",
    "lr_warmup_steps": 500,
    "lr_num_cycles": 1,
    "lr_power": 1.0,
    "enable_slicing": False,
    "enable_tiling": False,
    "optimizer": "adam",
    "beta1": 0.9,
    "beta2": 0.95,
    "weight_decay": 1e-4,
    "epsilon": 1e-8,
    "max_grad_norm": 1.0,
    "noised_image_dropout": 0.05,
    "allow_tf32": False,
    "nccl_timeout": 600,
    "tracker_name": None,
    "logging_dir": "logs",
    "report_to": "tensorboard",
}


def test_every_reference_flag_exists():
    known = {option for action in build_parser()._actions for option in action.option_strings}
    assert [flag for flag in SPEC_FLAGS if flag not in known] == []


def test_reference_defaults():
    args = parse_args(["--pretrained_model_name_or_path", "m", "--data_root", "d"])
    assert {key: getattr(args, key) for key in REFERENCE_DEFAULTS} == REFERENCE_DEFAULTS


def test_published_recipe_parses():
    args = parse_args(
        "--pretrained_model_name_or_path m --data_root d --caption_column prompt.txt --video_column videos.txt "
        "--tracking_column trackings.txt --height_buckets 480 --width_buckets 720 --frame_buckets 49 "
        "--optimizer AdamW --lr_scheduler cosine_with_restarts --mixed_precision bf16 --gradient_checkpointing "
        "--resume_from_checkpoint latest".split()
    )
    assert args.optimizer == "adamw" and args.height_buckets == [480]


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "--data_root"),
        (["--data_root", "d", "--frame_buckets", "48"], "4k+1"),
        (["--data_root", "d", "--height_buckets", "100"], "multiple of 16"),
        (["--data_root", "d", "--validation_prompt", "x"], "--validation_images"),
        (["--data_root", "d", "--noised_image_dropout", "2"], "noised_image_dropout"),
    ],
)
def test_bad_combinations_are_refused(extra, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--pretrained_model_name_or_path", "m", *extra])
    assert message in capsys.readouterr().err


def test_example_accelerate_configs_load():
    from pathlib import Path

    from accelerate.commands.config.config_args import ClusterConfig

    folder = Path(__file__).resolve().parents[2] / "examples" / "accelerate"
    kinds = {path.stem: ClusterConfig.from_yaml_file(str(path)) for path in folder.glob("*.yaml")}
    assert {name: config.distributed_type.value for name, config in kinds.items()} == {
        "single_gpu": "NO",
        "multi_gpu_ddp": "MULTI_GPU",
        "deepspeed_zero2": "DEEPSPEED",
    }
    assert all(config.mixed_precision == "bf16" for config in kinds.values())
    assert kinds["deepspeed_zero2"].deepspeed_config["zero_stage"] == 2


def test_wandb_without_the_package_is_a_clear_error(tmp_path):
    import importlib.util

    from das_core.errors import DasError
    from das_core.train.loop import train

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    args = parse_args(["--pretrained_model_name_or_path", "m", "--data_root", str(tmp_path), "--report_to", "wandb"])
    with pytest.raises(DasError, match="pip install wandb"):
        train(args)
