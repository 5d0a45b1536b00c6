"""The answer cap follows the run's own answers, and generation takes only the cores that are free."""

from tools.evaluate.limits import CAP_CEILING, CAP_FLOOR, answer_cap, cap_reason, generation_threads


def test_the_cap_leaves_room_for_answers_as_long_as_the_longest_training_answer():
    assert answer_cap([120, 250, 180]) == 384  # 1.5 × 250 = 375, rounded up to 32
    assert answer_cap([20, 30]) == CAP_FLOOR  # short answers never cut an ordinary base answer in half
    assert answer_cap([3000]) == CAP_CEILING  # a runaway costs minutes on a CPU
    assert answer_cap([250], context=256) == 256  # no answer fills more than the context
    assert answer_cap([]) == 512  # the data could not be read: a page of text
    assert cap_reason([120, 250], 384) == "1.5 × your longest training answer of 250 tokens"
    assert cap_reason([20], CAP_FLOOR) == "the lowest cap; your longest training answer has 20 tokens"
    assert cap_reason([3000], CAP_CEILING) == "the most it can be; your longest training answer has 3000 tokens"


def test_threads_are_the_free_cores_and_never_fewer_than_one():
    assert generation_threads(cores=2, load=0.1) == 2
    assert generation_threads(cores=2, load=1.2) == 1
    assert generation_threads(cores=2, load=9.7) == 1  # a busy machine: one thread, never a stall per matmul
    assert generation_threads(cores=16, load=4.0) == 12
