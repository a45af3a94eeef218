"""The das wire protocol: the one package that knows msgpack, frame layout, version and limits.

A message is a ZeroMQ multipart message: one msgpack map (the header) followed by zero or more
binary frames, one per image (and two for point tracks: float32 positions, visibility bits). The header always holds `v` (the protocol version) and `type`;
client requests carry `req` (an integer the server echoes in its reply). Images travel as their
own frames, losslessly encoded (`png`, `zlib` or `raw` uint8 RGB), described in the header by
`{"shape": [H, W, 3], "codec": ...}`; never pickle, never base64. Every field is checked against
`Limits` before anything is allocated, and any problem raises `ProtocolError` with a readable
reason. The full description is `PROTOCOL.md` beside this package.

Import from `das_core.wire.protocol`; its modules are its layout, not separate entry points:
`limits` (Limits, ProtocolError, job ids), `images` (EncodedImage, checksums), `point_tracks`
(EncodedPointTracks), `messages` (the
message dataclasses), `bodies` (what `info` and `reply` carry), `fields` (checked reads of a
header), `codec` (encode, decode), `stored` (the on-disk form of a message).
"""

from das_core.wire.protocol.bodies import (
    CancelResult,
    JobError,
    JobList,
    JobProgress,
    JobStatus,
    ReplyBody,
    ServerInfo,
    ServerStatus,
    WorkerStatus,
)
from das_core.wire.protocol.codec import VERSION, decode, encode
from das_core.wire.protocol.images import CODECS, EncodedImage, frame_digest, result_checksum
from das_core.wire.protocol.limits import DEFAULT_LIMITS, JOB_ID_PATTERN, Limits, ProtocolError, check_job_id
from das_core.wire.protocol.messages import (
    Accepted,
    Cancel,
    DepthRequest,
    DepthResult,
    Done,
    ErrorReply,
    Event,
    Fetch,
    Frame,
    Hello,
    Info,
    JobFailed,
    JobRequest,
    ListJobs,
    Message,
    Progress,
    Reply,
    StatusRequest,
    Submit,
)
from das_core.wire.protocol.point_tracks import EncodedPointTracks
from das_core.wire.protocol.stored import join_parts, split_parts

__all__ = [
    "CODECS",
    "DEFAULT_LIMITS",
    "JOB_ID_PATTERN",
    "VERSION",
    "Accepted",
    "Cancel",
    "CancelResult",
    "DepthRequest",
    "DepthResult",
    "Done",
    "EncodedImage",
    "EncodedPointTracks",
    "ErrorReply",
    "Event",
    "Fetch",
    "Frame",
    "Hello",
    "Info",
    "JobError",
    "JobFailed",
    "JobList",
    "JobProgress",
    "JobRequest",
    "JobStatus",
    "Limits",
    "ListJobs",
    "Message",
    "Progress",
    "ProtocolError",
    "Reply",
    "ReplyBody",
    "ServerInfo",
    "ServerStatus",
    "StatusRequest",
    "Submit",
    "WorkerStatus",
    "check_job_id",
    "decode",
    "encode",
    "frame_digest",
    "join_parts",
    "result_checksum",
    "split_parts",
]
