"""Segment an image with the registered LAD student and write its coloured mask.

    python examples/predict.py IMAGE MASK.png [MODEL_URI]     # default: models:/lad-student/latest
"""
import json
import sys

import cv2
import mlflow
import numpy as np
import torch
import yaml

image_path, mask_path = sys.argv[1], sys.argv[2]
uri = sys.argv[3] if len(sys.argv) > 3 else "models:/lad-student/latest"
mlflow.set_tracking_uri("sqlite:///.mlflow/mlflow.db")
model = mlflow.pytorch.load_model(uri).eval()  # normalised image(s) -> logits at the image's size
data = yaml.safe_load(open("params.yaml"))["data"]
image = cv2.imread(image_path, cv2.IMREAD_COLOR)  # BGR
if data["channel_order"] == "rgb":
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
x = (image.astype(np.float32) / 255 - np.float32(data["mean"])) / np.float32(data["std"])
with torch.no_grad():
    mask = model(torch.from_numpy(x).permute(2, 0, 1)[None]).argmax(1)[0].numpy()
palette = np.array(json.load(open("data/prepared/index.json"))["palette"], np.uint8)  # class -> RGB
cv2.imwrite(mask_path, cv2.cvtColor(palette[mask], cv2.COLOR_RGB2BGR))
print(f"{mask_path}: {mask.shape[1]}x{mask.shape[0]} mask of classes {np.unique(mask).tolist()}")
