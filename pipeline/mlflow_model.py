"""The code of the MLflow model of a trained network (MLflow's "models from code": nothing is unpickled).

:func:`pipeline.deploy.save_mlflow_model` saves this file as the model's code, beside two artifacts: the
weights as safetensors and the network's spec (the checkpoint's ``spec``: architecture, backbone, classes,
input channels) as JSON, with the ``pipeline`` package as the model's code path. ``mlflow.pyfunc.load_model``
runs this file in the loading process, which rebuilds the network from the spec and loads the weights::

    model = mlflow.pyfunc.load_model("models:/lad-student@candidate")
    logits = model.predict(images)           # (B, 3, H, W) float32, normalised -> (B, classes, H, W) logits
    net = model.unwrap_python_model().net    # the torch module (a pipeline.deploy.Predictor), e.g. for a GPU
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class SegmentationModel(PythonModel):
    """Normalised images in, logits at the images' size out (the MLflow signature says the shapes)."""

    _skip_type_hint_validation = True  # a tensor the signature describes: no type hints for MLflow to convert by

    def load_context(self, context) -> None:  # noqa: ANN001 - MLflow's PythonModelContext
        from safetensors.torch import load_file

        from pipeline.deploy import NETWORK, WEIGHTS, Predictor
        from pipeline.models import segmentor_from_spec

        spec = json.loads(Path(context.artifacts[NETWORK]).read_text())
        network = segmentor_from_spec(spec)
        network.load_state_dict(load_file(context.artifacts[WEIGHTS]))
        self.net = Predictor(network).eval()

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 - MLflow's pyfunc protocol
        import torch

        device = next(self.net.parameters()).device
        if isinstance(model_input, dict):  # the signature's named tensor
            model_input = model_input["image"]
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32), device=device)
        with torch.no_grad():
            return self.net(x).cpu().numpy()


mlflow.models.set_model(SegmentationModel())
