"""Writes the JPEG seeds of the `image_decode` fuzz target (fuzz/seeds/image_decode/*.jpg).

    pip install pillow && python3 scripts/jpeg_seeds.py
"""
import random
from pathlib import Path

from PIL import Image

out = Path(__file__).resolve().parent.parent / "fuzz/seeds/image_decode"
random.seed(7)
rgb = Image.new("RGB", (12, 10))
rgb.putdata([(random.randrange(256), (x * 20) % 256, (y * 25) % 256)
             for y in range(10) for x in range(12)])
rgb.save(out / "rgb12x10.jpg", quality=80)
rgb.save(out / "progressive.jpg", quality=70, progressive=True)
gray = Image.new("L", (8, 8))
gray.putdata([(i * 4) % 256 for i in range(64)])
gray.save(out / "gray8.jpg", quality=90)
