"""Wan-Move (torch + diffusers): Wan 2.1 I2V 14B fine-tuned to follow 2D point tracks with visibility.

`load_wan_move_pipeline` builds a `WanMovePipeline` from the published DiT (original Wan layout, converted
at load) and the diffusers Wan 2.1 I2V base; README.md beside this file lists the reference facts matched.
"""
