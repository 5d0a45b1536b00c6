"""The live training line in the chat."""

from assistant.watch import progress_text


def test_a_step_that_recomputes_layers_says_it_is_saving_memory():
    step = {"type": "step", "step": 3, "loss": 1.5, "tokens_per_s": 420, "eta_s": 30, "checkpointed_layers": 16}
    assert progress_text(step, 10).endswith("about 0 min 30 s left · saving memory by recomputing 16 layers")
    assert "saving memory" not in progress_text({**step, "checkpointed_layers": None}, 10)
