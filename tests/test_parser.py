import pytest

from trocr_lail.parser import parse_recipe


def write(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_yaml_values_are_typed_and_cli_flags_override_them(tmp_path):
    recipe = write(tmp_path, f"output_dir: {tmp_path}/out\nlearning_rate: 2e-5\nmax_steps: 100\nsynthetic: true\n"
                             "tiny_patch_size: [4, 4]\n")
    model_args, data_args, training_args, lail_args, _ = parse_recipe(["--config", recipe, "--max_steps", "5"])
    assert training_args.learning_rate == pytest.approx(2e-5)  # YAML reads "2e-5" as a string
    assert training_args.max_steps == 5
    assert data_args.synthetic is True
    assert model_args.tiny_patch_size == [4, 4]
    assert training_args.predict_with_generate is True
    assert lail_args.lail is False


def test_unknown_yaml_keys_are_named(tmp_path):
    recipe = write(tmp_path, f"output_dir: {tmp_path}\nlearning_rat: 1e-3\nbogus: 1\n")
    with pytest.raises(ValueError, match="bogus, learning_rat"):
        parse_recipe(["--config", recipe])


def test_unknown_flags_are_named(tmp_path):
    with pytest.raises(ValueError, match="--not_a_flag"):
        parse_recipe(["--output_dir", str(tmp_path), "--not_a_flag", "3"])


def test_missing_recipe_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        parse_recipe(["--config", str(tmp_path / "nope.yaml")])
