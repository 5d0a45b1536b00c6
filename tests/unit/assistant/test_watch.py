"""The live training line in the chat."""

from assistant.watch import final_text, progress_text


def test_a_step_that_recomputes_layers_says_it_is_saving_memory():
    step = {"type": "step", "step": 3, "loss": 1.5, "tokens_per_s": 420, "eta_s": 30, "checkpointed_layers": 16}
    assert progress_text(step, 10).endswith("about 0 min 30 s left · saving memory by recomputing 16 layers")
    assert "saving memory" not in progress_text({**step, "checkpointed_layers": None}, 10)


def test_the_live_line_ends_with_where_the_run_got_to():
    steps, evals = [(1, 2.5), (20, 1.25)], [(20, 1.5)]
    assert final_text("done", {}, steps, evals) == "Training done at step 20, loss 1.250 (validation 1.500)."
    assert final_text("stopped", {}, steps[:1], []) == "Training stopped at step 1, loss 2.500."
    assert final_text("failed", {"message": "out of memory"}, steps, evals) == "Training failed: out of memory"
