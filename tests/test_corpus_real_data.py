"""Corpus models on real data through edgeship.runtime: rendered text for the OCR detectors,
synthesised speech (Debian's espeak-ng) for the voice-activity detectors, streamed chunk by
chunk with their recurrent state fed back by name."""

from __future__ import annotations

import subprocess
import wave

import numpy as np
import pytest

from tests.fixtures.corpus import corpus_model


@pytest.mark.parametrize("model", ["ppocr_v4_det", "ppocr_v3_det"])
@pytest.mark.parametrize("width, height", [(640, 320), (480, 224)])
def test_text_detectors_find_rendered_text_at_any_height_and_width(model, width, height) -> None:
    """Real pixels through the runtime at two sizes: the DB detectors' probability map has the
    input's height and width, lights up on the words and stays dark elsewhere."""
    from edgeship.runtime import load
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), "white")
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=48)
    draw.text((40, height // 2 - 30), "EDGESHIP 2026", fill="black", font=font)
    left, top, right, bottom = draw.textbbox((40, height // 2 - 30), "EDGESHIP 2026", font=font)
    x = ((np.asarray(img, np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None]
    session = load(corpus_model(model), threads=1)
    prob = session.run({"x": x})[session.outputs[0].name][0, 0]
    assert prob.shape == (height, width)
    assert prob[top:bottom, left:right].mean() > 0.2
    assert prob[: top - 10].max() < 0.05 and prob[bottom + 10:].max() < 0.05


SENTENCE = "edgeship measures models on real devices, and never touches your files"
CHUNK, CONTEXT = 512, {"silero_vad_v6": 64, "silero_vad_v4": 0}  # v5+ take 64 samples before


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """One second of silence, the sentence spoken at 16 kHz, one second of silence."""
    wav = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), SENTENCE], check=True, capture_output=True)
    with wave.open(str(wav)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768
    t = np.arange(0, len(pcm) / rate, 1 / 16000)
    voiced = np.interp(t, np.arange(len(pcm)) / rate, pcm).astype(np.float32)
    silence = np.zeros(16000, np.float32)
    return np.concatenate([silence, voiced, silence])


def stream_vad(name: str, audio: np.ndarray, carry_state: bool = True) -> np.ndarray:
    from edgeship.runtime import load

    session = load(corpus_model(name), threads=1)
    state_names = {"silero_vad_v6": {"stateN": "state"}, "silero_vad_v4": {"hn": "h", "cn": "c"}}
    zero = {spec.name: np.zeros((2, 1, spec.shape[2]), np.float32)
            for spec in session.inputs if spec.name in state_names[name].values()}
    state, context, probs = dict(zero), np.zeros(CONTEXT[name], np.float32), []
    for start in range(0, len(audio) - CHUNK, CHUNK):
        chunk = audio[start:start + CHUNK]
        out = session.run({"input": np.concatenate([context, chunk])[None],
                           "sr": np.array(16000, np.int64), **state})
        probs.append(float(out["output"][0, 0]))
        state = {i: out[o] for o, i in state_names[name].items()} if carry_state else dict(zero)
        context = chunk[len(chunk) - CONTEXT[name]:]
    return np.array(probs)


@pytest.mark.parametrize("name", ["silero_vad_v6", "silero_vad_v4"])
def test_silero_hears_speech_and_silence_when_its_state_is_carried(speech, name) -> None:
    probs = stream_vad(name, speech)
    second = 16000 // CHUNK
    assert probs[:second].max() < 0.1 and probs[-second:].max() < 0.1
    voiced = probs[second:-second]
    assert (voiced > 0.5).mean() > 0.6
    # the recurrent state is what carries it: reset every chunk, it hears less of the speech
    assert (stream_vad(name, speech, carry_state=False)[second:-second] > 0.5).mean() < \
        (voiced > 0.5).mean()
