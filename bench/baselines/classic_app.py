"""The classic recipe users run today, kept faithful on purpose: Flask, the model loaded once into a
global, `model.predict` per request under a lock. Served by gunicorn (default sync workers).

    MODEL_PATH=models/digits.keras gunicorn -w 2 bench.baselines.classic_app:app
"""

import os
import threading

import keras
import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)
model = keras.models.load_model(os.environ["MODEL_PATH"])
lock = threading.Lock()


@app.route("/predict", methods=["POST"])
def predict():
    data = request.get_json()
    instances = data["instances"] if isinstance(data, dict) else data
    x = np.array(instances, dtype=model.inputs[0].dtype)
    with lock:
        predictions = model.predict(x, verbose=0)
    return jsonify({"predictions": predictions.tolist()})
