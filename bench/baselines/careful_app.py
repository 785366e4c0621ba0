"""The careful recipe: the classic app (Flask, model in a global, one call per request under a lock) with
`model.predict` replaced by the compiled call the worker uses (worker/model/loader.py: a `tf.function` with a
`None` batch dimension), served by gunicorn with 2 processes × 4 threads. This is what a user who already
fixed `model.predict` runs; the service is compared with it, not only with the 40 ms classic recipe.

    MODEL_PATH=models/digits.keras gunicorn -w 2 --threads 4 bench.baselines.careful_app:app
"""

import os
import threading

import numpy as np
from flask import Flask, jsonify, request

from worker.model.loader import load_model

app = Flask(__name__)
model = load_model(os.environ["MODEL_PATH"], "model", "1")
model.warm_up([1, 8])  # trace and warm the compiled call before the first request
spec = model.signature.inputs[0]
lock = threading.Lock()


@app.route("/predict", methods=["POST"])
def predict():
    data = request.get_json()
    instances = data["instances"] if isinstance(data, dict) else data
    x = np.array(instances, dtype=spec.dtype)
    with lock:
        outputs = model.predict({spec.name: x})
    return jsonify({"predictions": next(iter(outputs.values())).tolist()})
