"""``transformers.pipeline("image-classification", model=<repo>)`` on a pushed student, as a Hub model page shows it.

Usage: ``python pipeline_worker.py REPO_ID import|plain SIZE``. With ``import`` the worker imports r2kd_hf first (the
cifar_* and pruned architectures need it); ``plain`` imports nothing of ours (standard timm students must work so).
Prints one JSON line: the pipeline's top label and the model's own top label on the same preprocessed images.
"""

import json
import sys

import numpy as np


def main(repo_id: str, mode: str, size: int) -> None:
    if mode == "import":
        import r2kd_hf  # noqa: F401
    import torch
    from PIL import Image
    from transformers import AutoModelForImageClassification, pipeline

    classify = pipeline("image-classification", model=repo_id)
    model = AutoModelForImageClassification.from_pretrained(repo_id).eval()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (size + 8, size + 4, 3), dtype=np.uint8)) for _ in range(4)]
    tops, own = [], []
    for image in images:
        tops.append(classify(image, top_k=1)[0]["label"])
        with torch.no_grad():
            pixels = classify.image_processor(image, return_tensors="pt")["pixel_values"]
            own.append(model.config.id2label[int(model(pixels).logits.argmax(1))])
    print(json.dumps({"pipeline": tops, "model": own, "processor": type(classify.image_processor).__name__,
                      "r2kd_hf_imported": "r2kd_hf" in sys.modules}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
