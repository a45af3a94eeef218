"""`das` subcommands, one module per area. Each module has `register(subparsers)`.

Modules import nothing heavy at import time (torch, bpy): `das --help` must stay fast.
"""
