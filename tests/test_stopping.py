"""Early stopping in a LAIL run with a connector-only stage: the stage's evaluations (recognition unchanged) do not
spend the patience, and the setting survives a resume."""

from transformers import TrainerControl, TrainerState, TrainingArguments

from trocr_lail.training.stopping import StagedEarlyStopping


def evaluate_at(callback, args, state, control, step, cer):
    state.global_step = step
    callback.on_evaluate(args, state, control, {"eval_cer": cer})
    # what Trainer does after each evaluation with load_best_model_at_end (best_metric for the next comparison)
    if state.best_metric is None or cer < state.best_metric:
        state.best_metric = cer


def test_connector_only_evaluations_do_not_spend_patience(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), metric_for_best_model="cer", greater_is_better=False,
                             eval_strategy="steps", load_best_model_at_end=True, save_strategy="steps")
    state, control = TrainerState(), TrainerControl()
    callback = StagedEarlyStopping(2, start_step=100)
    for step in (25, 50, 75, 100):  # the connector-only stage: the same CER every time
        evaluate_at(callback, args, state, control, step, 0.20)
    assert callback.early_stopping_patience_counter == 0 and not control.should_training_stop
    evaluate_at(callback, args, state, control, 125, 0.21)
    assert callback.early_stopping_patience_counter == 1 and not control.should_training_stop
    evaluate_at(callback, args, state, control, 150, 0.22)
    assert control.should_training_stop  # two evaluations of the recognition stage without a better CER

    plain = StagedEarlyStopping(2)  # start_step 0: the transformers callback's behaviour
    state, control = TrainerState(), TrainerControl()
    for step in (25, 50, 75):
        evaluate_at(plain, args, state, control, step, 0.20)
    assert control.should_training_stop


def test_start_step_survives_a_resume():
    saved = StagedEarlyStopping(3, start_step=100)
    saved.early_stopping_patience_counter = 2
    restored = StagedEarlyStopping.from_state(saved.state())
    assert (restored.start_step, restored.early_stopping_patience, restored.early_stopping_patience_counter) == \
        (100, 3, 2)
