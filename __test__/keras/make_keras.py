#!/usr/bin/env python3
"""Writes the Keras 3 files that `__test__/keras.test.ts` loads with `loadKeras`.

Each case is a small Sequential model with seeded random weights (biases too), saved by Keras
itself as `<case>.keras` (a zip of config.json, metadata.json and model.weights.h5); one case
is also saved the other way Keras users hold models, `model.save_weights()` →
`<case>.weights.h5` beside `model.to_json()` → `<case>.config.json`, and two in the legacy HDF5
format, `model.save('<case>.h5')`. `expected.json` has, per
case, the input and Keras' own `model.predict` on it (float32 values as JSON numbers).

Usage (needs keras 3 and a backend; the files in this folder were written with Keras 3.15.1 on
the torch backend, torch 2.15 CPU):

    KERAS_BACKEND=torch python3 make_keras.py [OUT_DIR]     # default: this script's folder

`npm test` needs no Python: it reads the committed files. Keras' zip and HDF5 writers put
timestamps in the files, so a rerun differs in bytes (not in weights or predictions); CI does
not rerun this script.
"""
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

STEPS, BATCH = 6, 3


def lstm():
    return keras.Sequential([keras.Input((STEPS, 3)), layers.LSTM(5), layers.Dense(2)])


def lstm_hard_sigmoid():
    # Keras 3's hard_sigmoid is relu6(x + 3) / 6.
    return keras.Sequential(
        [keras.Input((STEPS, 3)), layers.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True), layers.Dense(2)]
    )


def gru_reset_after():
    return keras.Sequential(
        [
            keras.Input((STEPS, 3)),
            layers.GRU(4, reset_after=True, return_sequences=True),
            layers.TimeDistributed(layers.Dense(3, activation="softmax")),
        ]
    )


def gru_reset_before():
    return keras.Sequential(
        [keras.Input((STEPS, 2)), layers.GRU(4, reset_after=False), layers.Dropout(0.5), layers.Dense(1, activation="sigmoid")]
    )


def bidirectional():
    return keras.Sequential(
        [
            keras.Input((STEPS, 3)),
            layers.Bidirectional(layers.LSTM(4, return_sequences=True)),
            layers.Bidirectional(layers.GRU(3), merge_mode="sum"),
            layers.Dense(2, activation="tanh"),
        ]
    )


def embedding():
    return keras.Sequential(
        [
            keras.Input((STEPS,), dtype="int32"),
            layers.Embedding(12, 5, mask_zero=True),
            layers.SimpleRNN(4),
            layers.Dense(3, activation="softmax"),
        ]
    )


def simple_rnn():
    return keras.Sequential(
        [
            keras.Input((STEPS, 3)),
            layers.SimpleRNN(4, activation="relu", return_sequences=True),
            layers.TimeDistributed(layers.Dense(2)),
        ]
    )


def masking_stacked():
    return keras.Sequential(
        [
            keras.Input((STEPS, 2)),
            layers.Masking(mask_value=0.0),
            layers.LSTM(4, return_sequences=True),
            layers.GRU(3, return_sequences=True),
            layers.Dense(2),
        ]
    )


CASES = {
    "lstm": lstm,
    "lstm_hard_sigmoid": lstm_hard_sigmoid,
    "gru_reset_after": gru_reset_after,
    "gru_reset_before": gru_reset_before,
    "bidirectional": bidirectional,
    "embedding": embedding,
    "simple_rnn": simple_rnn,
    "masking_stacked": masking_stacked,
}
# Also saved as model.weights.h5 + config.json.
WEIGHTS_ONLY = "gru_reset_after"
# Also saved in the legacy HDF5 format (`model.save('m.h5')`).
LEGACY_H5 = ("bidirectional", "lstm_hard_sigmoid")


def randomize(model, rng):
    # Every weight, biases included, from N(0, 0.5²): zero biases would hide a wrong bias mapping.
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype(w.dtype) for w in model.get_weights()])


def inputs(name, model, rng):
    if name == "embedding":
        x = rng.integers(1, 12, size=(BATCH, STEPS)).astype("int32")
        x[1, 4:] = 0  # padding at the end: lengths 6, 4, 2
        x[2, 2:] = 0
        return x
    x = rng.uniform(-1, 1, size=(BATCH, STEPS) + tuple(model.inputs[0].shape[2:])).astype("float32")
    if name == "masking_stacked":
        x[1, 3:] = 0.0  # masked steps at the end: lengths 6, 3
    return x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261203)
    keras.utils.set_random_seed(1)
    expected = {"keras_version": keras.__version__, "backend": keras.backend.backend(), "cases": {}}
    for name, make in CASES.items():
        model = make()
        randomize(model, rng)
        x = inputs(name, model, rng)
        y = model.predict(x, verbose=0)
        model.save(os.path.join(out, f"{name}.keras"))
        if name in LEGACY_H5:
            model.save(os.path.join(out, f"{name}.h5"))
        if name == WEIGHTS_ONLY:
            model.save_weights(os.path.join(out, f"{name}.weights.h5"))
            with open(os.path.join(out, f"{name}.config.json"), "w") as f:
                f.write(model.to_json())
        expected["cases"][name] = {
            "input": x.tolist(),
            "input_shape": list(x.shape),
            "output": np.asarray(y, dtype=np.float64).tolist(),
            "output_shape": list(np.shape(y)),
        }
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
