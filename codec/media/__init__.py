"""Media I/O, one module per modality (:mod:`.image`, :mod:`.audio`, :mod:`.video`): decode files to arrays in a fixed range, and write them back. Every path of the package (CLI, RD
evaluation, MPQ) reads media through here.

Images -> ``uint8`` array ``(H, W, 3)`` (RGB). Conversion rules, applied in this order:
  - palette (P) images are expanded to their RGB(A) colours;
  - greyscale (L, I;16, I, F) is replicated to three channels; 16-bit and float data are scaled to 8 bits
    (16-bit: ``round(v / 257)``);
  - 16-bit RGB(A) PNGs are reduced to 8 bits by Pillow when it opens them (it keeps the high byte);
  - an alpha channel is composited over white (``RGBA``, ``LA``, ``PA``): codecs code colour, not transparency;
  - CMYK and YCbCr are converted to RGB by Pillow.
  Anything Pillow cannot open raises :class:`MediaError` naming the file.

Audio -> ``float32`` array ``(samples, channels)`` in [-1, 1] and the sample rate (wav, flac, ogg/vorbis via
soundfile; other formats through ffmpeg).

Video (raw) -> ``uint8`` planes of 4:2:0 frames: ``Y (T, H, W)``, ``U`` and ``V (T, H/2, W/2)`` from ``.y4m`` (C420
variants only) or headerless ``.yuv`` (I420, size and frame rate given), and anything ffmpeg decodes (mp4, mkv).
"""

from codec.media.audio import SAMPLE_FORMATS, audio_sample_format, ffprobe_audio, load_audio, save_audio  # noqa: E402
from codec.media.common import (  # noqa: E402
    AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, ffmpeg_exe, ffmpeg_version, modality_of_path, run_ffmpeg,
)
from codec.media.image import decode_image_bytes, image_to_rgb8, load_image, save_image  # noqa: E402
from codec.media.video import (  # noqa: E402
    VIDEO_OUTPUTS, Video, VideoInfo, VideoWriter, load_video, load_y4m, load_yuv, open_video, save_y4m,
)

__all__ = ["SAMPLE_FORMATS", "audio_sample_format", "AUDIO_EXTENSIONS", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "VIDEO_OUTPUTS", "Video", "VideoInfo",
           "VideoWriter", "decode_image_bytes", "ffmpeg_exe", "ffmpeg_version", "ffprobe_audio", "image_to_rgb8",
           "load_audio", "load_image", "load_video", "load_y4m", "load_yuv", "modality_of_path", "open_video",
           "run_ffmpeg", "save_audio", "save_image", "save_y4m"]
