#!/usr/bin/env python3
"""Writes the functional Keras 3 models that `__test__/keras-graph.test.ts` loads with
`loadKerasGraph`: encoder–decoders whose encoders return their states (`return_state=True`)
and whose decoders start from them (`initial_state=`), with seeded random weights (biases too),
saved by Keras itself as `<case>.keras`; `expected_graph.json` has, per case, the inputs and
Keras' own `model.predict` on them (float32 values as JSON numbers).

Usage (needs keras 3 and a backend; the files in this folder were written with Keras 3 on the
jax backend, CPU):

    KERAS_BACKEND=jax python3 make_keras_graph.py [OUT_DIR]     # default: this script's folder

`npm test` needs no Python: it reads the committed files.
"""
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402


def bidirectional_lstm():
    # A bidirectional LSTM encoder over float steps; its forward and backward states joined
    # (forward first) start an LSTM decoder over token ids; a softmax at every decoder step.
    src = keras.Input((None, 3), name="src")
    tgt = keras.Input((None,), dtype="int32", name="tgt")
    _, fh, fc, bh, bc = layers.Bidirectional(layers.LSTM(4, return_sequences=True, return_state=True), name="enc")(src)
    h = layers.Concatenate(name="cat_h")([fh, bh])
    c = layers.Concatenate(name="cat_c")([fc, bc])
    emb = layers.Embedding(7, 3, name="emb")(tgt)
    dec = layers.LSTM(8, return_sequences=True, name="dec")(emb, initial_state=[h, c])
    y = layers.Dense(5, activation="softmax", name="y")(dec)
    x = {"src": np.random.default_rng(1).uniform(-1, 1, (3, 5, 3)), "tgt": np.random.default_rng(2).integers(0, 7, (3, 4))}
    return keras.Model([src, tgt], y), x


def gru_two_outputs():
    # A GRU encoder (reset_after, Keras' default) returning its state, which starts a GRU
    # decoder over known future inputs; a second output reads the encoder's last output.
    past = keras.Input((None, 2), name="past")
    future = keras.Input((None, 1), name="future")
    last, state = layers.GRU(5, return_state=True, name="enc")(past)
    dec = layers.GRU(5, return_sequences=True, name="dec")(future, initial_state=state)
    y = layers.TimeDistributed(layers.Dense(1), name="y")(dec)
    level = layers.Dense(2, activation="tanh", name="level")(layers.Dropout(0.3)(last))
    x = {"past": np.random.default_rng(3).uniform(-1, 1, (2, 6, 2)), "future": np.random.default_rng(4).uniform(-1, 1, (2, 3, 1))}
    return keras.Model([past, future], [y, level]), x


def lstm_attention():
    # Luong's dot attention: an LSTM decoder started from an LSTM encoder's states attends over
    # the encoder's outputs (keras.layers.Attention on [query, value]); the decoder state and
    # the context, concatenated, feed a softmax at every step.
    src = keras.Input((None,), dtype="int32", name="src")
    tgt = keras.Input((None,), dtype="int32", name="tgt")
    enc, h, c = layers.LSTM(6, return_sequences=True, return_state=True, name="enc")(layers.Embedding(9, 4, name="src_emb")(src))
    dec = layers.LSTM(6, return_sequences=True, name="dec")(layers.Embedding(7, 4, name="tgt_emb")(tgt), initial_state=[h, c])
    ctx = layers.Attention(name="ctx")([dec, enc])
    y = layers.Dense(7, activation="softmax", name="y")(layers.Concatenate(name="cat")([dec, ctx]))
    x = {"src": np.random.default_rng(5).integers(0, 9, (3, 5)), "tgt": np.random.default_rng(6).integers(0, 7, (3, 4))}
    return keras.Model([src, tgt], y), x


CASES = {
    "graph_bidirectional_lstm": bidirectional_lstm,
    "graph_gru_two_outputs": gru_two_outputs,
    "graph_lstm_attention": lstm_attention,
}


def main(out):
    expected = {}
    for k, (name, make) in enumerate(CASES.items()):
        model, x = make()
        rng = np.random.default_rng(100 + k)
        model.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in model.get_weights()])
        model.save(os.path.join(out, f"{name}.keras"))
        ys = model.predict([x[i.name] for i in model.inputs], verbose=0)
        ys = ys if isinstance(ys, list) else [ys]
        expected[name] = {
            "inputs": {key: np.asarray(v).tolist() for key, v in x.items()},
            "outputs": {o: np.asarray(y, dtype="float32").reshape(-1).tolist() for o, y in zip(model.output_names, ys)},
        }
    with open(os.path.join(out, "expected_graph.json"), "w") as f:
        json.dump({"keras_version": keras.__version__, "backend": keras.backend.backend(), "cases": expected}, f)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
