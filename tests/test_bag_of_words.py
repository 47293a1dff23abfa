"""scripts/bag_of_words.py: the no-encoder baseline of the built-in task."""

from pytest import approx

from conftest import load_script

bow = load_script("bag_of_words")


def test_words_are_lowercased_letter_runs_cut_at_max_words():
    assert bow.words("Mr. Darcy's  ball -- it was DULL!") == ["mr", "darcy", "s", "ball", "it", "was", "dull"]
    assert bow.words("Mr. Darcy's ball", limit=2) == ["mr", "darcy"]


def test_a_word_that_decides_the_label_is_learnt_and_rare_words_are_left_out():
    names = ["emma", "elinor", "anne"]  # one name per class decides the label
    train = [(f"{names[i % 3]} walked to town with a friend {i}", i % 3) for i in range(30)]
    train.append(("a singular word", 0))  # once only: below --min-count 2
    dev = [(f"yesterday {names[i % 3]} stayed home", i % 3) for i in range(9)]
    result = bow.evaluate({"train": train, "dev": dev}, min_count=2, l2=1e-3, limit=None)
    assert result["bag_of_words"] == 1.0
    assert result["majority"] == approx(3 / 9)  # class 0 is the training majority (11 of 31 rows)
    vocab = bow.vocabulary([p for p, _ in train], min_count=2)
    assert "singular" not in vocab and {"emma", "walked", "a"} <= set(vocab)
    # with only each passage's first word, dev sees "yesterday" alone, a word training never had:
    # no feature, so the bias alone answers, with the training majority
    assert bow.evaluate({"train": train, "dev": dev}, 2, 1e-3, limit=1)["bag_of_words"] == approx(3 / 9)
