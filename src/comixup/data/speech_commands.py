"""Google Speech Commands (v0.01, 30 words) as 1 x 160 x 100 normalized log spectrograms.

Layout (the extracted ``speech_commands_v0.01.tar.gz``)::

    <root>/speech_commands/<word>/*.wav          16 kHz, 16-bit PCM mono, about 1 s each
    <root>/speech_commands/validation_list.txt   relative paths (<word>/<file>.wav), one per line
    <root>/speech_commands/testing_list.txt
    <root>/speech_commands/_background_noise_/   ignored

The ``"val"`` and ``"test"`` splits are the files listed in ``validation_list.txt`` and
``testing_list.txt``; ``"train"`` is every other file. The classes are the 30 words of v0.01 in
sorted order (:data:`WORDS`), so labels do not depend on which folders are present; folders
that are not one of them (e.g. the 5 extra words of v0.02) are skipped unless ``classes=`` lists
them.

Features (:func:`log_spectrogram`), following the GCommands loader used by the mixup speech
experiments (Zhang et al., ICLR 2018), resized to exactly 160 x 100:

* the waveform (int16 / 32768) is zero-padded or trimmed to 16,000 samples (1 s);
* ``torch.stft`` with ``n_fft = win_length = 318`` (Hamming window, about 20 ms), hop 160 (10 ms),
  ``center=True`` with reflect padding: ``318 // 2 + 1 = 160`` frequency bins and
  ``1 + 16000 // 160 = 101`` frames, of which the first 100 are kept;
* ``log1p`` of the magnitude, then per-spectrogram normalization ``(s - mean) / std``.

There is no data augmentation: ``train_transform`` has no effect.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import torch

from .._errors import InputError
from .common import DatasetInfo, SampleListDataset

__all__ = [
    "HOP_LENGTH",
    "N_FFT",
    "N_FRAMES",
    "SAMPLE_RATE",
    "SPEECH_COMMANDS_INFO",
    "WORDS",
    "SpeechCommands",
    "log_spectrogram",
    "read_wav",
]

#: The 30 words of Speech Commands v0.01, sorted.
WORDS = (
    "bed",
    "bird",
    "cat",
    "dog",
    "down",
    "eight",
    "five",
    "four",
    "go",
    "happy",
    "house",
    "left",
    "marvin",
    "nine",
    "no",
    "off",
    "on",
    "one",
    "right",
    "seven",
    "sheila",
    "six",
    "stop",
    "three",
    "tree",
    "two",
    "up",
    "wow",
    "yes",
    "zero",
)
SAMPLE_RATE = 16000
N_FFT = 318
HOP_LENGTH = 160
N_FRAMES = 100

SPEECH_COMMANDS_INFO = DatasetInfo(
    num_classes=len(WORDS),
    channels=1,
    image_size=(N_FFT // 2 + 1, N_FRAMES),
    mean=(0.0,),
    std=(1.0,),
)

_LAYOUT = """    <word>/*.wav  (16 kHz 16-bit PCM mono; 30 word folders; _background_noise_ ignored)
    validation_list.txt
    testing_list.txt"""


def read_wav(path) -> np.ndarray:
    """Read a 16-bit PCM wav file with :mod:`wave` as float32 in ``[-1, 1)`` (first channel).

    Raises an :class:`~comixup._errors.InputError` (a ValueError) naming the file for a sample
    width other than 2 bytes, a rate other than 16 kHz, or a file that is not a readable wav.
    """
    try:
        with wave.open(str(path), "rb") as w:
            width, rate = w.getsampwidth(), w.getframerate()
            channels = w.getnchannels()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise InputError(f"{path}: not a readable wav file ({exc})") from None
    if width != 2:
        raise InputError(f"{path}: expected 16-bit PCM, got {8 * width}-bit")
    if rate != SAMPLE_RATE:
        raise InputError(f"{path}: expected {SAMPLE_RATE} Hz, got {rate} Hz")
    audio = np.frombuffer(frames, dtype="<i2").reshape(-1, channels)[:, 0]
    return audio.astype(np.float32) / 32768.0


_WINDOW = torch.hamming_window(N_FFT, periodic=False)


def log_spectrogram(audio) -> torch.Tensor:
    """The ``(1, 160, 100)`` normalized log spectrogram of a 16 kHz waveform (module docstring)."""
    a = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    if a.dim() != 1:
        raise ValueError(f"audio must be a 1-D waveform, got shape {tuple(a.shape)}")
    if a.numel() >= SAMPLE_RATE:
        a = a[:SAMPLE_RATE]
    else:
        a = torch.nn.functional.pad(a, (0, SAMPLE_RATE - a.numel()))
    spec = torch.stft(
        a,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        window=_WINDOW,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    s = torch.log1p(spec.abs())[:, :N_FRAMES]
    std = s.std()
    s = (s - s.mean()) / (std if float(std) > 0 else 1.0)
    return s.unsqueeze(0).float().contiguous()


class SpeechCommands(SampleListDataset):
    """Speech Commands returning ``(x, y)``: ``x`` float32 ``(1, 160, 100)``, ``y`` int.

    Args:
        root: directory containing ``speech_commands/`` (or that directory itself).
        split: ``"train"``, ``"val"`` or ``"test"``.
        train_transform: ignored (no augmentation), accepted for a uniform API.
        limit: keep a deterministic subset of this many samples.
        seed: seed of the ``limit`` subset.
        classes: the word list (default :data:`WORDS`); labels are positions in it.
    """

    has_boxes = False
    dataset = "speech-commands"
    dirname = "speech_commands"
    layout = _LAYOUT

    def __init__(self, root, *, classes=None, **options):
        self._classes = classes
        super().__init__(root, **options)

    def _marker(self, split: str) -> str:
        return "testing_list.txt"

    def _list_samples(self, base: Path, split: str) -> list[tuple[Path, int]]:
        classes = self._classes
        self.classes = list(WORDS if classes is None else classes)
        if len(set(self.classes)) != len(self.classes) or not self.classes:
            raise ValueError(f"classes must be distinct words, got {self.classes!r}")
        self.class_to_idx = {w: i for i, w in enumerate(self.classes)}
        lists = {}
        for name, fname in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
            p = base / fname
            if not p.exists():
                raise FileNotFoundError(
                    f"speech-commands: missing {p}. Expected layout under {base}:\n{_LAYOUT}"
                )
            lists[name] = {
                line.strip().replace("\\", "/")
                for line in p.read_text().splitlines()
                if line.strip()
            }
        held_out = lists["val"] | lists["test"]
        samples = []
        for word in sorted(p.name for p in base.iterdir() if p.is_dir()):
            if word not in self.class_to_idx:
                continue  # _background_noise_ and words outside `classes`
            for wav in sorted((base / word).glob("*.wav")):
                rel = f"{word}/{wav.name}"
                in_split = rel not in held_out if split == "train" else rel in lists[split]
                if in_split:
                    samples.append((wav, self.class_to_idx[word]))
        return samples

    def _setup(self, base: Path, keep, train_transform: bool) -> None:
        self.info = (
            SPEECH_COMMANDS_INFO
            if self._classes is None
            else DatasetInfo(len(self.classes), 1, SPEECH_COMMANDS_INFO.image_size, (0.0,), (1.0,))
        )

    def _load(self, path: Path):
        return log_spectrogram(read_wav(path))
