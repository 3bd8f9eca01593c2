"""Builders of miniature datasets in the real on-disk formats."""

import pickle
import wave

import numpy as np
import pytest
from PIL import Image


def write_jpeg(path, size, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    Image.new("RGB", (w, h), colour).save(path, format="JPEG", quality=95)


def write_wav(path, samples, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


@pytest.fixture
def cifar_root(tmp_path):
    """CIFAR-10 (5 train batches of 6 images, test of 4) and CIFAR-100 (8 / 4 images)."""
    rng = np.random.default_rng(0)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(1, 6):
        labels = [(i + k) % 3 for k in range(6)]
        data = rng.integers(0, 256, size=(6, 3072), dtype=np.uint8)
        data[:, 0] = i  # first red pixel tags the batch
        with open(c10 / f"data_batch_{i}", "wb") as f:
            pickle.dump(
                {b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"f"] * 6},
                f,
            )
    with open(c10 / "test_batch", "wb") as f:
        pickle.dump({b"labels": [0, 1, 2, 9], b"data": np.full((4, 3072), 255, dtype=np.uint8)}, f)
    with open(c10 / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, f)
    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    for split, n in (("train", 8), ("test", 4)):
        with open(c100 / split, "wb") as f:
            pickle.dump(
                {
                    b"fine_labels": [k * 11 % 100 for k in range(n)],
                    b"coarse_labels": [0] * n,
                    b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                },
                f,
            )
    with open(c100 / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"fine{i}".encode() for i in range(100)]}, f)
    return tmp_path


@pytest.fixture
def tiny_root(tmp_path):
    """tiny-imagenet-200 with 3 classes, 2 train images each, 3 val images (some 1-channel)."""
    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n03", "n01", "n02"]  # deliberately unsorted
    base.mkdir()
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for c, wnid in enumerate(wnids):
        boxes = []
        for k in range(2):
            write_jpeg(
                base / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", (64, 64), (40 * c, 0, 0)
            )
            boxes.append(f"{wnid}_{k}.JPEG\t{k}\t1\t30\t40")
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("\n".join(boxes) + "\n")
    ann = []
    for k, wnid in enumerate(["n02", "n01", "n03"]):
        path = base / "val" / "images" / f"val_{k}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (64, 64), 128).save(path, format="JPEG")
        ann.append(f"val_{k}.JPEG\t{wnid}\t{k}\t2\t{50 + k}\t60")
    (base / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    return tmp_path


VOC = """<annotation><folder>val</folder><filename>{stem}</filename>
<size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>n01</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>
</annotation>"""


@pytest.fixture
def voc_xml():
    """The VOC XML template (``str.format`` with stem, w, h, x0, y0, x1, y1)."""
    return VOC


@pytest.fixture
def wav_writer():
    """The ``write_wav(path, samples, rate=16000)`` helper."""
    return write_wav


@pytest.fixture
def imagenet_root(tmp_path):
    """imagenet/ with 2 classes, 2 train + 1 val image each, and a VOC XML for one val image."""
    base = tmp_path / "imagenet"
    for c, wnid in enumerate(["n01", "n02"]):
        for k in range(2):
            write_jpeg(base / "train" / wnid / f"{wnid}_{k}.JPEG", (40, 30), (200, 30 * c, 0))
        write_jpeg(base / "val" / wnid / f"ILSVRC2012_val_{c:08d}.JPEG", (80, 40), (0, 0, 200))
    xml = base / "bbox" / "val" / "ILSVRC2012_val_00000000.xml"
    xml.parent.mkdir(parents=True)
    # annotated on a 160 x 80 original: rescaled by 1/2 to the 80 x 40 file
    xml.write_text(
        VOC.format(stem="ILSVRC2012_val_00000000", w=160, h=80, x0=40, y0=0, x1=119, y1=79)
    )
    return tmp_path


@pytest.fixture
def speech_root(tmp_path):
    """speech_commands/ with 3 words x 3 files, a list per held-out split and background noise."""
    base = tmp_path / "speech_commands"
    t = np.arange(16000) / 16000.0
    for c, word in enumerate(["yes", "no", "zero"]):
        for k in range(3):
            n = 12000 if k == 0 else 16500  # one short file, others too long
            write_wav(
                base / word / f"spk{k}_nohash_0.wav",
                (8000 * np.sin(2 * np.pi * (300 + 200 * c) * np.resize(t, n))).astype(np.int16),
            )
    write_wav(base / "_background_noise_" / "noise.wav", np.zeros(32000, dtype=np.int16))
    write_wav(base / "backward" / "a_nohash_0.wav", np.zeros(16000, dtype=np.int16))
    (base / "validation_list.txt").write_text("yes/spk1_nohash_0.wav\nno/spk1_nohash_0.wav\n")
    (base / "testing_list.txt").write_text("zero/spk2_nohash_0.wav\n")
    return tmp_path
