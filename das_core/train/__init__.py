"""Training DaS: dataset layout and checks, Blender synthesis of datasets, the accelerate trainer.

Torch-free: `layout` (dataset files, frame sampling, buckets), `check` (`das dataset check`),
`synth` (`das dataset synth`, drives Blender through `bpy`), `args` (the reference trainer's flags),
`checkpoint` (checkpoint folders). With torch: `dataset`, `objective`, `components`, `validation`,
`loop` (`das train`, `accelerate launch -m das_core.train`).
"""
