"""Open an input file that may be compressed (open_input): gzip, bzip2, xz or zstd, told
apart by the file's first bytes (its magic number), never by its name. A file that matches
none of them is read as it is.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from pathlib import Path
from typing import BinaryIO, Callable

from ..errors import InputError

GZIP, BZIP2, XZ, ZSTD = "gzip", "bzip2", "xz", "zstd"
# Bytes buffered over a decompressor; the importers ask for blocks of MBs, which go past it.
_BUFFER_BYTES = 1 << 16
# Compressed bytes fed to the zstd decompressor at a time (its recommended input size).
_ZSTD_INPUT_BYTES = 1 << 17
# zstd --long=31 needs a 2 GB window; the decompressor refuses more than 128 MB by default.
_ZSTD_MAX_WINDOW = 1 << 31
# bzip2: "BZh", the block size 1-9, then a block's or the end of stream's 48-bit magic.
_BZIP2_MAGICS = (bytes.fromhex("314159265359"), bytes.fromhex("177245385090"))


def detect_compression(path) -> str | None:
    """GZIP, BZIP2, XZ or ZSTD from the first bytes of the file, or None for anything else."""
    with open(path, "rb") as f:
        head = f.read(10)
    if head.startswith(b"\x1f\x8b"):
        return GZIP
    if head.startswith(b"\xfd7zXZ\x00"):
        return XZ
    # A zstd frame, or a skippable frame (pzstd starts its files with one).
    if head.startswith(b"\x28\xb5\x2f\xfd") or (
            len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18"):
        return ZSTD
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[3:4] != b"0" \
            and head[4:10] in _BZIP2_MAGICS:
        return BZIP2
    return None


def require_file(path: Path, give: str) -> None:
    """InputError "<path> is a directory|does not exist; <give>" unless path is a file."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise InputError(f"{path} {what}; {give}")


def open_input(path) -> tuple[BinaryIO, Callable[[], int]]:
    """(stream, position): a binary stream of the file's decompressed bytes (the file itself
    when it is not compressed), to be closed by the caller, and a function giving the bytes of
    the file read so far, which reaches the file's size once the stream is read to its end (so
    a progress bar over the files' sizes ends at their total).

    The stream has read, readinto, readline and line iteration. Reading a truncated or
    corrupt compressed file raises a one-line InputError when it reaches the bad spot."""
    path = Path(path)
    kind = detect_compression(path)
    raw = open(path, "rb")
    if kind is None:
        return raw, raw.tell
    try:
        inner, errors = _decompressor(kind, raw, path)
    except BaseException:
        raw.close()
        raise
    return io.BufferedReader(_Decompressed(inner, raw, path, kind, errors), _BUFFER_BYTES), raw.tell


class _Decompressed(io.RawIOBase):
    """A decompressor as a raw stream whose decompression errors are InputErrors."""

    def __init__(self, inner, raw, path: Path, kind: str, errors: tuple):
        self._inner, self._raw, self._errors = inner, raw, errors
        self._path, self._kind = path, kind

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            return self._inner.readinto(b)
        except self._errors as e:
            detail = " ".join(str(e).split()) or type(e).__name__
            raise InputError(f"{self._path}: the {self._kind} data is truncated or corrupt "
                             f"(after {self._raw.tell():,} of {self._size():,} bytes: {detail}); "
                             "download or compress the file again") from None

    def _size(self) -> int:
        try:
            return self._path.stat().st_size
        except OSError:
            return -1

    def close(self) -> None:
        if not self.closed:
            try:
                self._inner.close()
            finally:
                self._raw.close()
                super().close()


class _ZstdFrames(io.RawIOBase):
    """zstd frames back to back, as zstd and pzstd write them. zstandard's stream_reader ends
    quietly when the file ends inside a frame, so the frames are decoded one decompressobj each
    and a file that ends inside one raises EOFError."""

    def __init__(self, raw, zstandard):
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW)
        self._frame = None  # the decompressor of the frame being read; None between frames
        self._input = b""  # compressed bytes read past the end of the last frame
        self._out, self._at = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._at == len(self._out):
            data, self._input = self._input or self._raw.read(_ZSTD_INPUT_BYTES), b""
            if not data:
                if self._frame is not None:
                    raise EOFError("the file ends inside a zstd frame")
                return 0
            if self._frame is None:
                self._frame = self._dctx.decompressobj()
            self._out, self._at = self._frame.decompress(data), 0
            if self._frame.eof:
                self._input, self._frame = self._frame.unused_data, None
        n = min(len(b), len(self._out) - self._at)
        b[:n] = self._out[self._at:self._at + n]
        self._at += n
        return n


def _decompressor(kind: str, raw, path: Path) -> tuple[BinaryIO, tuple]:
    """A stream of raw's decompressed bytes, and the exceptions its corrupt data raises."""
    if kind == GZIP:
        return gzip.GzipFile(fileobj=raw, mode="rb"), (EOFError, OSError, zlib.error)
    if kind == BZIP2:
        return bz2.BZ2File(raw, mode="rb"), (EOFError, OSError)
    if kind == XZ:
        return lzma.LZMAFile(raw, mode="rb"), (EOFError, lzma.LZMAError, OSError)
    try:
        import zstandard
    except ImportError:
        raise InputError(f"{path} is zstd-compressed and the zstandard package is missing; "
                         "install it (pip install zstandard) or decompress the file") from None
    return _ZstdFrames(raw, zstandard), (EOFError, zstandard.ZstdError)
