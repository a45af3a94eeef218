"""Point tracks in their wire form: float32 positions [T, N, 2] and visibility bits [T, N], one frame each.

Positions are little-endian float32 (x, y) in pixels of the job's image, frame by frame; visibility is
`numpy.packbits` of the row-major bool [T, N] (first point of a byte in its highest bit), zero-padded
to whole bytes. The header describes them as `{"frames": T, "points": N}`; the receiver checks T and N
against its limits, then each frame's length exactly, before it reads a value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from das_core.wire.protocol.limits import DEFAULT_LIMITS, Limits, ProtocolError

_POSITION = np.dtype("<f4")


@dataclass(frozen=True)
class EncodedPointTracks:
    """`frames` x `points` tracks in their wire form; `decode()` gives the arrays back."""

    frames: int
    points: int
    positions: bytes
    visibility: bytes

    @classmethod
    def encode(cls, tracks: np.ndarray, visibility: np.ndarray, limits: Limits = DEFAULT_LIMITS) -> EncodedPointTracks:
        """Pack float [T, N, 2] positions and bool (or 0/1) [T, N] visibility; raise `ProtocolError` if malformed.

        Positions beyond +-`limits.max_track_coordinate` (far outside any image, e.g. a point just in
        front of the camera) are clamped to it: outside the image either way, so the model sees the same.
        """
        tracks, visible = np.asarray(tracks), np.asarray(visibility)
        if tracks.ndim != 3 or tracks.shape[2] != 2 or tracks.dtype.kind != "f":
            raise ProtocolError(
                f"point tracks must be float [T, N, 2] (x, y in pixels of the image), got {tracks.dtype} "
                f"{list(tracks.shape)}",
                "bad_request",
            )
        if visible.shape != tracks.shape[:2]:
            raise ProtocolError(
                f"visibility must be [T, N] = {list(tracks.shape[:2])} like the point tracks, got "
                f"{list(visible.shape)}; give one flag per point and frame",
                "bad_request",
            )
        if visible.dtype != bool and (visible.dtype.kind not in "iu" or ((visible != 0) & (visible != 1)).any()):
            raise ProtocolError(f"visibility must be bool (or 0/1 integers), got {visible.dtype}", "bad_request")
        bound = limits.max_track_coordinate
        positions = tracks.astype(_POSITION)
        positions = np.where(np.isfinite(positions), np.clip(positions, -bound, bound), positions)  # NaN, inf refused
        encoded = cls(
            frames=int(tracks.shape[0]),
            points=int(tracks.shape[1]),
            positions=positions.tobytes(),
            visibility=np.packbits(visible.astype(bool).reshape(-1)).tobytes(),
        )
        encoded.check(limits)
        return encoded

    @staticmethod
    def check_shape(frames: int, points: int, limits: Limits) -> None:
        """Raise `ProtocolError` unless T (all windows together) and N are within `limits` (before any
        buffer is read); `Submit.validate` checks each window's frames."""
        if not 1 <= frames <= limits.max_control_frames:
            raise ProtocolError(
                f"the point tracks have {frames} frames; this server takes 1 to {limits.max_frames} per window "
                f"and at most {limits.max_windows} windows (sample them to the frames the server's info names)",
                "limit",
            )
        if not 1 <= points <= limits.max_points:
            raise ProtocolError(
                f"the point tracks have {points} points; this server takes 1 to {limits.max_points} (track a "
                "coarser grid, e.g. a larger spacing)",
                "limit",
            )
        positions_size = EncodedPointTracks.sizes(frames, points)[0]
        if positions_size > limits.max_part_bytes:  # one binary frame, like any image
            raise ProtocolError(
                f"the point tracks of {frames} frames x {points} points are {positions_size} bytes of positions; "
                f"one frame of a message holds at most {limits.max_part_bytes} (track fewer points, or send the "
                "shot as several jobs)",
                "limit",
            )

    @staticmethod
    def sizes(frames: int, points: int) -> tuple[int, int]:
        """Bytes of the positions frame and of the visibility frame for T x N tracks."""
        return frames * points * 2 * _POSITION.itemsize, (frames * points + 7) // 8

    def check(self, limits: Limits) -> None:
        """Raise `ProtocolError` unless the shape, both frames' lengths and every position are valid."""
        self.check_shape(self.frames, self.points, limits)
        positions_size, visibility_size = self.sizes(self.frames, self.points)
        if len(self.positions) != positions_size or len(self.visibility) != visibility_size:
            raise ProtocolError(
                f"point tracks of {self.frames} frames x {self.points} points need {positions_size} bytes of "
                f"positions and {visibility_size} of visibility, got {len(self.positions)} and {len(self.visibility)}",
                "bad_request",
            )
        positions = np.frombuffer(self.positions, _POSITION)
        finite = np.isfinite(positions)
        if not finite.all():
            index = int(np.argmin(finite)) // 2
            raise ProtocolError(
                f"point {index % self.points} has a position that is not finite (NaN or inf) at frame "
                f"{index // self.points}; give every point a finite position (a hidden one may keep its last)",
                "bad_request",
            )
        bound = limits.max_track_coordinate
        if np.abs(positions).max() > bound:
            raise ProtocolError(f"point track positions must lie within +-{bound:g} pixels", "limit")

    def decode(self) -> tuple[np.ndarray, np.ndarray]:
        """(positions float32 [T, N, 2], visibility bool [T, N]); call `check` first on untrusted data."""
        count = self.frames * self.points
        positions = np.frombuffer(self.positions, _POSITION).reshape(self.frames, self.points, 2)
        bits = np.unpackbits(np.frombuffer(self.visibility, np.uint8), count=count)
        return positions.astype(np.float32), bits.astype(bool).reshape(self.frames, self.points)
