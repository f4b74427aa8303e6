"""The multilingual lexicon: exact rewritings, longest match first, English left alone, and
queries in other languages reaching the English text tower as English."""

import numpy as np
import pytest
from cli_helpers import run

from vidfm.data.lexicon import LANGUAGES, detect_language, from_english, to_english
from vidfm.data.text_augment import translate_caption
from vidfm.retrieval.embedder import Embedder


@pytest.mark.parametrize(
    "query, language, english",
    [
        ("红色的圆向左移动", "zh", "red circle moves to the left"),
        ("一个大的蓝色正方形变大", "zh", "large blue square grows"),  # 变大 (grows) before 大 (large)
        ("赤い丸が左に動く", "ja", "red circle moves to the left"),
        ("un círculo rojo se mueve a la izquierda", "es", "red circle moves to the left"),
        ("le petit carré bleu grandit", "fr", "small blue square grows"),
        ("das rote Dreieck dreht sich", "de", "red triangle rotates"),
        ("a red circle moves to the left", None, "a red circle moves to the left"),
        ("an orange triangle bounces", None, "an orange triangle bounces"),  # 'orange', 'triangle' are French too
    ],
)
def test_queries_are_rewritten_word_by_word(query, language, english):
    t = to_english(query)
    assert (t.language, t.text) == (language, english) and not t.unknown


def test_what_the_lexicon_does_not_know_is_reported():
    t = to_english("红色的猫向左移动")  # a cat is not in the world
    assert t.text == "red moves to the left" and t.unknown == ["猫"]
    t = to_english("el perro rojo")
    assert t.language == "es" and t.text == "perro red" and t.unknown == ["perro"]
    assert to_english("a video of 向左移动").text == "a video of moves to the left"  # English templates around a label stay
    assert detect_language("un cercle rouge") == "fr"


@pytest.mark.parametrize("language", LANGUAGES)
def test_captions_go_there_and_back(language):
    caption = "the small red circle moves to the left"
    assert to_english(from_english(caption, language), language).text == "small red circle moves to the left"


def test_caption_translation_as_augmentation_is_seeded():
    caption = "the blue square grows"
    assert translate_caption(caption, 0, p=0.0) == caption
    a = [translate_caption(caption, seed, p=1.0) for seed in range(6)]
    assert a == [translate_caption(caption, seed, p=1.0) for seed in range(6)] and len(set(a)) > 1


def test_the_english_tower_sees_english(video_text_dir, videos, capsys):
    e, raw = Embedder(video_text_dir), Embedder(video_text_dir, lexicon=False)
    english = e.encode_text(["red circle moves to the left"])
    np.testing.assert_allclose(e.encode_text(["红色的圆向左移动"]), english, atol=1e-6)
    assert not np.allclose(raw.encode_text(["红色的圆向左移动"]), english, atol=1e-3)
    code, out, err = run(capsys, "zeroshot", video_text_dir, videos["coded"], "--labels", "向左移动,变大", "--json")
    assert code == 0 and "zh -> English by the built-in lexicon: 'moves to the left'" in err
    code, _, err = run(capsys, "zeroshot", video_text_dir, videos["coded"], "--labels", "向左移动,变大", "--no-lexicon")
    assert code == 0 and "lexicon" not in err
