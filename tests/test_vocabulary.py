"""``extend_vocabulary``: which characters a tokenizer cannot encode, how the decoder grows for them (old rows and
special ids untouched, new rows initialised as documented in models/vocabulary.py), and a 2-step run on lines with
new characters whose export's pipeline can read them."""

import json

import pytest
import torch
from PIL import Image, ImageDraw
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, pipeline

from trocr_lail.models.ctc import CtcVisionEncoderDecoderModel
from trocr_lail.models.tiny import CHARSET, build_char_tokenizer, build_tiny_processor
from trocr_lail.models.vocabulary import characters_to_add, extend_vocabulary, unknown_characters

from conftest import TINY_ARGS, make_tiny_model

GREEK = ["αβγ δε", "ζηθ ικ", "λμν ξο", "πρσ τυ", "φχψ ωα", "βγδ εζ", "ηθι κλ", "μνξ οπ"]


def rows(model):
    decoder = model.decoder
    return decoder.get_input_embeddings().weight, decoder.get_output_embeddings().weight


def test_unknown_characters_are_unk_or_do_not_round_trip():
    tokenizer = build_char_tokenizer()
    assert unknown_characters(tokenizer, "ab cβあ") == {"β", "あ"}
    # A normalizer that folds "ﬁ" into "fi": it encodes without <unk>, but decodes as something else.
    vocab = {tok: i for i, tok in enumerate(["<s>", "<pad>", "</s>", "<unk>", "f", "i"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    folding = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")
    assert 3 not in folding("ﬁ", add_special_tokens=False)["input_ids"]
    assert unknown_characters(folding, "fiﬁ") == {"ﬁ"}


def test_extension_adds_exactly_the_missing_characters_and_keeps_old_rows(tiny_processor):
    tokenizer = tiny_processor.tokenizer
    model = make_tiny_model(tiny_processor)
    special = {name: getattr(tokenizer, name) for name in ("pad_token_id", "bos_token_id", "eos_token_id",
                                                             "unk_token_id")}
    start = model.config.decoder_start_token_id
    old_in, old_out = (w.detach().clone() for w in rows(model))
    old_len = len(tokenizer)
    assert old_in.data_ptr() != rows(model)[1].data_ptr()  # the tiny decoder is untied

    added = extend_vocabulary(model, tokenizer, ["naïve café", "βあ ab", "βββ"])
    assert added == sorted("éïβあ") == characters_to_add(build_char_tokenizer(), ["naïve café βあ"])
    assert len(tokenizer) == old_len + 4
    assert {name: getattr(tokenizer, name) for name in special} == special
    assert model.config.decoder_start_token_id == start
    new_in, new_out = rows(model)
    assert new_in.shape == new_out.shape == (old_len + 4, old_in.shape[1])
    assert model.config.decoder.vocab_size == old_len + 4 == model.decoder.config.vocab_size
    assert torch.equal(new_in[:old_len], old_in) and torch.equal(new_out[:old_len], old_out)  # bit-identical
    ids = dict(zip(added, tokenizer.convert_tokens_to_ids(added)))
    assert sorted(ids.values()) == list(range(old_len, old_len + 4))
    e, i = tokenizer.convert_tokens_to_ids(["e", "i"])
    plain = [k for k in range(old_len) if k not in special.values()]
    for new, old in ((new_in, old_in), (new_out, old_out)):
        assert torch.equal(new[ids["é"]], old[e]) and torch.equal(new[ids["ï"]], old[i])  # NFKD: the base letter
        for char in "βあ":  # no known part: the mean of the non-special rows
            assert torch.allclose(new[ids[char]], old[plain].mean(dim=0))
    ids_back = tokenizer("café β", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids_back) == "café β" and 3 not in ids_back
    assert extend_vocabulary(model, tokenizer, ["café β"]) == []  # nothing left to add: nothing changes


def test_tied_embeddings_stay_tied_and_unused_rows_are_reused():
    processor = build_tiny_processor(16, 64)
    model = make_tiny_model(processor)
    model.decoder.output_projection.weight = model.decoder.get_input_embeddings().weight  # tie them
    # A tokenizer with fewer tokens than the decoder has rows (as config:trocr-* has): new ids reuse spare rows.
    small = build_char_tokenizer(CHARSET[:50])
    vocab = rows(model)[0].shape[0]
    before = rows(model)[0].detach().clone()
    added = extend_vocabulary(model, small, ["Z1"])
    assert added == ["Z"] and small.convert_tokens_to_ids("Z") == 54 < vocab
    embeddings, output = rows(model)
    assert embeddings is output and embeddings.shape[0] == vocab
    plain = [k for k in range(54) if k not in small.all_special_ids]
    assert torch.allclose(embeddings[54], before[plain].mean(dim=0))
    assert torch.equal(embeddings[55:], before[55:]) and torch.equal(embeddings[:54], before[:54])


def test_ctc_head_grows_with_the_vocabulary(tiny_processor):
    model = CtcVisionEncoderDecoderModel.from_plain(make_tiny_model(tiny_processor), upsample=2)
    old = model.ctc_head.weight.detach().clone().unflatten(0, (2, -1))
    old_vocab = old.shape[1]
    extend_vocabulary(model, tiny_processor.tokenizer, ["αβ"])
    new = model.ctc_head.weight.unflatten(0, (2, -1))
    assert new.shape[1] == old_vocab + 2 == model.config.decoder.vocab_size
    assert torch.equal(new[:, :old_vocab], old)
    assert torch.allclose(new[:, old_vocab], old.mean(dim=1))


def test_extend_vocabulary_with_peft_is_refused(tmp_path):
    from trocr_lail.parser import parse_recipe
    from trocr_lail.preflight import SettingsError, check_settings

    args = parse_recipe(TINY_ARGS + ["--synthetic", "true", "--extend_vocabulary", "true", "--use_peft", "true",
                                     "--output_dir", str(tmp_path), "--max_steps", "1"])
    with pytest.raises(SettingsError, match="extend_vocabulary.*use_peft"):
        check_settings(*args)


def write_split(folder, texts):
    folder.mkdir(parents=True)
    with open(folder / "metadata.jsonl", "w", encoding="utf-8") as handle:
        for index, text in enumerate(texts):
            image = Image.new("L", (128, 32), 255)
            draw = ImageDraw.Draw(image)
            for k, char in enumerate(text):  # a mark per character: the images differ, no font needed
                draw.rectangle((4 + 20 * k, 8 + ord(char) % 12, 14 + 20 * k, 26), fill=ord(char) % 90)
            image.save(folder / f"{index}.png")
            handle.write(json.dumps({"file_name": f"{index}.png", "text": text}, ensure_ascii=False) + "\n")


@pytest.mark.slow
def test_two_step_run_exports_a_pipeline_that_reads_the_new_characters(tmp_path):
    from trocr_lail.run import main

    write_split(tmp_path / "data" / "train", GREEK)
    write_split(tmp_path / "data" / "test", GREEK[:2])
    out = tmp_path / "run"
    main(TINY_ARGS + ["--data_dir", str(tmp_path / "data"), "--validation_split", "null", "--extend_vocabulary",
                      "true", "--max_steps", "2", "--per_device_train_batch_size", "4", "--output_dir", str(out),
                      "--report_to", "none", "--use_cpu", "true", "--save_strategy", "no", "--eval_strategy", "no",
                      "--generation_max_length", "6", "--augment", "none"])
    export = out / "export"
    greek = sorted(set("".join(GREEK)) - {" "})
    reader = pipeline("image-to-text", model=str(export), trust_remote_code=True, device="cpu")
    tokenizer = reader.tokenizer
    ids = tokenizer(" ".join(greek), add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == " ".join(greek)
    config = json.loads((export / "config.json").read_text())
    assert config["decoder"]["vocab_size"] == len(tokenizer) == 99 + len(greek)
    assert (config["decoder_start_token_id"], config["pad_token_id"]) == (0, 1)  # the tiny model's, unchanged
    # Mechanics, not accuracy (2 steps read nothing): bias generation toward a new character's id; the export's
    # decoder must have a row for it, and the pipeline must decode it back to that character.
    omega = tokenizer.convert_tokens_to_ids("ω")
    generation = json.loads((export / "generation_config.json").read_text())
    (export / "generation_config.json").write_text(json.dumps({**generation, "sequence_bias": [[[omega], 100.0]]}))
    reader = pipeline("image-to-text", model=str(export), trust_remote_code=True, device="cpu")
    text = reader(str(tmp_path / "data" / "test" / "0.png"))[0]["generated_text"]
    assert text and set(text) == {"ω"}


def test_validate_names_each_unknown_character_with_its_count_and_first_line(tmp_path, capsys):
    import yaml

    from trocr_lail.cli import main as cli_main

    write_split(tmp_path / "data" / "train", ["plain", "café β", "ββ x", "あ β"])
    write_split(tmp_path / "data" / "test", ["ok", "Ω"])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "validation_split": None}))
    assert cli_main(["validate", "--config", str(recipe), *TINY_ARGS]) == 1
    out = capsys.readouterr().out
    train, test = (tmp_path / "data" / split / "metadata.jsonl" for split in ("train", "test"))
    assert "3 character(s) the tokenizer cannot encode" in out
    assert f"'β' U+03B2 GREEK SMALL LETTER BETA: 4x, first at {train} line 2" in out
    assert f"'é' U+00E9 LATIN SMALL LETTER E WITH ACUTE: 1x, first at {train} line 2" in out
    assert f"'あ' U+3042 HIRAGANA LETTER A: 1x, first at {train} line 4" in out
    assert f"'Ω' U+03A9 GREEK CAPITAL LETTER OMEGA: 1x, first at {test} line 2" in out
    # With the option, the training split's characters become tokens; the test split's Ω is still named.
    assert cli_main(["validate", "--config", str(recipe), *TINY_ARGS, "--extend_vocabulary", "true"]) == 1
    out = capsys.readouterr().out
    assert "extend_vocabulary: training adds 3 character(s) of split 'train' as new tokens: éβあ" in out
    assert "1 character(s) the tokenizer cannot encode" in out and "'Ω' U+03A9" in out and "'β'" not in out
