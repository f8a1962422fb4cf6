"""--generation_backend ctranslate2: eval/predict generation through CTranslate2, with transformers' predictions.

CTranslate2 runs the same weights with its own CPU/GPU kernels. The model being evaluated is converted once (float32,
into --output_dir/ctranslate2/, reused while its weights are unchanged), and every generation setting is mapped to
CTranslate2's options so that it generates what `model.generate()` generates, token for token; a setting that has no
exact counterpart is refused in one line before anything runs. Losses still come from PyTorch.

- `check_backend_flags`: the flags, before anything loads (CTranslate2 installed, a known compute type).
- `check_model_and_generation`: after the model loads, before training: a model type CTranslate2 converts, and
  generation settings it can reproduce.
- `CTranslate2Generator.for_model`: convert (or reuse) into a folder (the scripts: --output_dir/ctranslate2) and
  load; `generate()` returns token ids laid out as `model.generate()` returns them (decoder start token, tokens,
  end token, padding).
How each setting maps and what is refused, and why, is in the summarization README ("Another generation engine").
"""

import copy
import hashlib
import json
import logging
import os
import shutil

import torch

from seq2seq_checks import UsageError

logger = logging.getLogger(__name__)

GENERATION_BACKENDS = ("transformers", "ctranslate2")
COMPUTE_TYPES = ("float32", "int8", "int8_float32", "int16")
# transformers model_type -> the architectures CTranslate2's converter handles (and that the tests cover).
SUPPORTED_MODEL_TYPES = ("bart", "m2m_100", "marian", "mbart", "pegasus", "t5")
CONVERTED_FOLDER = "ctranslate2"
BACKEND_HELP = (
    "Generation engine for eval/predict: 'transformers' (model.generate) or 'ctranslate2' (pip install "
    "ctranslate2==4.8.5): the model is converted once into --output_dir/ctranslate2 (again only when its weights "
    "change) and generates the same predictions; losses still come from PyTorch. Whether it is faster depends on "
    "the machine and the run (bench/README.md). Settings it cannot reproduce are refused before anything runs."
)
COMPUTE_TYPE_HELP = (
    "CTranslate2's weights and arithmetic: float32 (same predictions as transformers), or int8, int8_float32, "
    "int16 (smaller, often faster; predictions and scores may change: compare them on your data)."
)
FINGERPRINT_FILE = "seq2seq_fingerprint.json"
# Generation settings with no CTranslate2 counterpart; set to anything but their default, they are refused.
UNMAPPED_SETTINGS = {
    "do_sample": False,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "penalty_alpha": None,
    "force_words_ids": None,
    "constraints": None,
    "sequence_bias": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "encoder_no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0,
    "exponential_decay_length_penalty": None,
    "renormalize_logits": False,
    "forced_decoder_ids": None,
    "max_time": None,
    "stop_strings": None,
    "guidance_scale": None,
    "watermarking_config": None,
    "assistant_model": None,
    "prompt_lookup_num_tokens": None,
}


def check_backend_flags(backend: str, compute_type: str, generates: bool = True) -> None:
    """--generation_backend and --ctranslate2_compute_type, before anything loads (`generates`: the run generates
    in eval/predict at all)."""
    if backend not in GENERATION_BACKENDS:
        raise UsageError(f"--generation_backend must be one of {', '.join(GENERATION_BACKENDS)}, got {backend!r}")
    if compute_type not in COMPUTE_TYPES:
        raise UsageError(f"--ctranslate2_compute_type must be one of {', '.join(COMPUTE_TYPES)}, got {compute_type!r}")
    if backend == "ctranslate2" and not generates:
        raise UsageError(
            "--generation_backend ctranslate2 has nothing to generate: add --predict_with_generate (and --do_eval "
            "or --do_predict), or leave the flag out"
        )
    if backend == "ctranslate2" and not ctranslate2_installed():
        raise UsageError(
            "--generation_backend ctranslate2 needs the ctranslate2 package: pip install ctranslate2==4.8.5 "
            "(or leave the flag out to generate with transformers)"
        )


def ctranslate2_installed() -> bool:
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return True


def add_backend_arguments(parser) -> None:
    """--generation_backend and --ctranslate2_compute_type for the argparse scripts (the Accelerate twins)."""
    parser.add_argument("--generation_backend", default="transformers", choices=GENERATION_BACKENDS, help=BACKEND_HELP)
    parser.add_argument("--ctranslate2_compute_type", default="float32", choices=COMPUTE_TYPES, help=COMPUTE_TYPE_HELP)


def generation_config_for(model, generate_kwargs: dict):
    """The generation config `model.generate(**generate_kwargs)` runs with: the model's, updated by the kwargs."""
    config = copy.deepcopy(model.generation_config)
    config.update(**{key: value for key, value in generate_kwargs.items() if value is not None})
    return config


def check_model_and_generation(model, generate_kwargs: dict) -> None:
    """Refuse, before training, a model CTranslate2 cannot convert or generation settings it cannot reproduce."""
    model_type = model.config.model_type
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UsageError(
            f"--generation_backend ctranslate2 does not support {model_type} models (supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}); leave the flag out to generate with transformers"
        )
    config = generation_config_for(model, generate_kwargs)
    for name, default in UNMAPPED_SETTINGS.items():
        value = getattr(config, name, default)
        if value not in (default, None, [], {}):
            refuse(f"{name}={value!r}, which CTranslate2 does not have: remove it")
    if config.decoder_start_token_id is None and model.config.decoder_start_token_id is None:
        refuse("no decoder_start_token_id: set it in the model's config.json")
    if config.repetition_penalty not in (None, 1.0):
        refuse(
            f"repetition_penalty={config.repetition_penalty}: transformers also penalizes the decoder start token, "
            "and under beam search applies it to log-probabilities, where CTranslate2 penalizes generated tokens' "
            "scores: remove it"
        )
    if config.no_repeat_ngram_size:
        refuse(
            f"no_repeat_ngram_size={config.no_repeat_ngram_size}: transformers counts the decoder start token in "
            "the n-grams, CTranslate2 does not (and bans them before its log-softmax under beam search): remove it"
        )
    if (config.num_beams or 1) == 1:
        return
    # Beam search: CTranslate2 bans tokens before its log-softmax, transformers after, so a ban that takes away real
    # probability (the end token under a minimum length) ranks the beams differently.
    for name in ("min_length", "min_new_tokens"):
        if getattr(config, name, None):
            refuse(
                f"{name}={getattr(config, name)} with beam search ({config.num_beams} beams): use greedy search "
                f"(--num_beams 1), or remove {name}"
            )
    if not config.early_stopping:  # transformers' default is False
        refuse(
            "early_stopping=False with beam search: transformers then searches on past the point where CTranslate2 "
            'stops, which can end on other predictions; set "early_stopping": true (and "num_beams") in the '
            "generation config (both backends then give the same predictions)"
        )
    if config.early_stopping == "never" and config.forced_eos_token_id is not None:
        refuse('early_stopping="never" with forced_eos_token_id: set "early_stopping": true in the generation config')


def refuse(problem: str) -> None:
    raise UsageError(
        f"--generation_backend ctranslate2 cannot give transformers' predictions with {problem} (the model's "
        "generation_config.json or the generation flags); or leave out --generation_backend ctranslate2"
    )


def generator_for(backend: str, model, tokenizer, output_dir: str, compute_type: str, processes=None):
    """The `CTranslate2Generator` of a run's --generation_backend (None for transformers): `model` converted into
    `output_dir`/ctranslate2, again only if its weights changed since the last call (e.g. by training)."""
    if backend != "ctranslate2":
        return None
    folder = os.path.join(output_dir, CONVERTED_FOLDER)
    return CTranslate2Generator.for_model(model, tokenizer, folder, compute_type, processes)


def weights_fingerprint(model) -> str:
    """A hash of the model's weights and config: the converted model is reused while it is unchanged."""
    digest = hashlib.sha256(model.config.to_json_string(use_diff=False).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _converter_class():
    from ctranslate2.converters import TransformersConverter
    from ctranslate2.converters import transformers as converters

    class MarianStartingFromItsStartToken(converters.MarianMTLoader):
        """Marian as transformers runs it: the decoder starts from the embedding of its start token (<pad>).

        CTranslate2's own loader drops <pad> and starts from a zero vector, which equals transformers only while
        that row is untouched; fine-tuning trains it (the output layer shares it), and the predictions drift.
        """

        def get_model_spec(self, model):
            model.config.normalize_before = False
            model.config.normalize_embedding = False
            return converters.BartLoader.get_model_spec(self, model)

        def set_decoder(self, spec, decoder):
            converters.BartLoader.set_decoder(self, spec, decoder)

        def get_vocabulary(self, model, tokenizer):
            return converters.BartLoader.get_vocabulary(self, model, tokenizer)

        def set_config(self, config, model, tokenizer):
            config.eos_token = tokenizer.eos_token
            config.unk_token = tokenizer.unk_token
            config.decoder_start_token = tokenizer.convert_ids_to_tokens(model.config.decoder_start_token_id)

    class InMemoryConverter(TransformersConverter):
        """Converts a model already in memory (the one just trained), filling in the architecture flags that
        transformers 5 configs no longer store but the converter reads."""

        def __init__(self, model, tokenizer, config_folder: str) -> None:
            super().__init__(config_folder)
            self.model, self.tokenizer = model, tokenizer

        def _load(self):
            # The converter picks its loader from a registry by config class; Marian's is swapped for this call.
            # The loaders write flags into the model's config: they are taken out again (the weights' fingerprint
            # and the saved model stay as they were).
            loaders, config = converters._MODEL_LOADERS, self.model.config
            original, attributes = loaders["MarianConfig"], set(vars(config))
            loaders["MarianConfig"] = MarianStartingFromItsStartToken()
            try:
                return super()._load()
            finally:
                loaders["MarianConfig"] = original
                for added in set(vars(config)) - attributes:
                    delattr(config, added)

        def load_model(self, *args, **kwargs):
            config, encoder = self.model.config, self.model.get_encoder()
            if not hasattr(config, "normalize_before"):  # pre-norm layers end the stack with a layer norm
                config.normalize_before = getattr(encoder, "layer_norm", None) is not None
            if not hasattr(config, "normalize_embedding"):
                config.normalize_embedding = getattr(encoder, "layernorm_embedding", None) is not None
            return self.model

        def load_tokenizer(self, *args, **kwargs):
            tokenizer = copy.copy(self.tokenizer)
            if hasattr(tokenizer, "num_madeup_words"):
                # M2M100: filler words take the embedding rows past the tokenizer's ids (none if the embedding
                # was resized to the tokenizer).
                tokenizer.num_madeup_words = max(0, self.model.config.vocab_size - len(tokenizer.get_vocab()))
            return tokenizer

    return InMemoryConverter


def convert(model, tokenizer, target: str) -> str:
    """Convert `model` into the folder `target` (float32), or reuse the folder if it holds these weights. A folder
    there that this module did not write is refused, never replaced."""
    fingerprint = weights_fingerprint(model)
    recorded = os.path.join(target, FINGERPRINT_FILE)
    if os.path.isfile(recorded):
        with open(recorded, encoding="utf-8") as file:
            if json.load(file).get("weights") == fingerprint:
                logger.info(f"CTranslate2: reusing the converted model in {target} (same weights)")
                return target
    elif os.path.exists(target):
        raise UsageError(
            f"{target} exists but holds no model converted by --generation_backend ctranslate2; move it away (the "
            "converted model is written there)"
        )
    partial = f"{target}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    model.config.save_pretrained(partial)  # the converter reads the config from a folder
    converted = os.path.join(partial, "model")
    _converter_class()(model, tokenizer, partial).convert(converted, quantization="float32")
    with open(os.path.join(converted, FINGERPRINT_FILE), "w", encoding="utf-8") as file:
        json.dump({"weights": fingerprint}, file)
    shutil.rmtree(target, ignore_errors=True)  # our own conversion of older weights
    os.replace(converted, target)
    shutil.rmtree(partial, ignore_errors=True)
    logger.info(f"CTranslate2: converted the model into {target}")
    return target


def read_vocabulary(folder: str) -> list[str]:
    for name in ("shared_vocabulary.json", "target_vocabulary.json"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as file:
                return json.load(file)
    raise UsageError(f"{folder} holds no CTranslate2 vocabulary: delete the folder so that it is converted again")


class CTranslate2Generator:
    """Generates with a converted model what `model.generate()` generates, laid out as its output."""

    def __init__(self, folder: str, model, compute_type: str = "float32") -> None:
        import ctranslate2

        self.model = model
        self.vocabulary = read_vocabulary(folder)
        self.token_ids = {token: index for index, token in enumerate(self.vocabulary)}
        if len(self.token_ids) != len(self.vocabulary):
            raise UsageError(f"the converted vocabulary in {folder} repeats tokens: CTranslate2 cannot map it back")
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as file:
            self.converted_start_token = json.load(file).get("decoder_start_token")
        # On the model's device: a GPU process generates on its own GPU, a CPU one on the process's torch threads.
        device = next(model.parameters()).device
        on_gpu = device.type == "cuda" and ctranslate2.get_cuda_device_count() > 0
        self.translator = ctranslate2.Translator(
            folder,
            device="cuda" if on_gpu else "cpu",
            device_index=(device.index or 0) if on_gpu else 0,
            compute_type=compute_type,
            inter_threads=1,
            intra_threads=torch.get_num_threads(),
        )

    @classmethod
    def for_model(cls, model, tokenizer, folder: str, compute_type: str, processes=None):
        """Convert `model` into `folder` on the main process (the others wait), then load it on every process.
        `processes`: None for one process, else anything with `is_main_process` and `wait_for_everyone()` (an
        Accelerator)."""
        if processes is None or processes.is_main_process:
            convert(model, tokenizer, folder)
        if processes is not None:
            processes.wait_for_everyone()
        return cls(folder, model, compute_type)

    def options(self, config) -> tuple[dict, list[int]]:
        """CTranslate2's options for a generation config, and the decoder start token with the forced tokens after
        it."""
        start = config.decoder_start_token_id
        if start is None:
            start = self.model.config.decoder_start_token_id
        forced = [] if config.forced_bos_token_id is None else [config.forced_bos_token_id]
        # transformers counts the decoder start token in max_length/min_length, not in max_new_tokens.
        # Unset values take transformers' defaults (max_length 20, no minimum, one beam).
        steps = config.max_new_tokens if config.max_new_tokens is not None else (config.max_length or 20) - 1
        min_steps = (
            config.min_new_tokens if config.min_new_tokens is not None else max((config.min_length or 0) - 1, 0)
        )
        eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
        # forced_eos_token_id: transformers makes the last token the end token; CTranslate2 stops one step
        # earlier and the end token is appended (`generate`).
        budget = steps - len(forced) - (1 if config.forced_eos_token_id is not None else 0)
        beams = config.num_beams or 1
        options = {
            "beam_size": beams,
            "num_hypotheses": config.num_return_sequences or 1,
            "length_penalty": 1.0 if config.length_penalty is None else config.length_penalty,
            "repetition_penalty": 1.0 if config.repetition_penalty is None else config.repetition_penalty,
            "end_token": [self.vocabulary[token] for token in eos],
            # Banned tokens (Marian bans <pad>): CTranslate2 removes them before the log-softmax, transformers after,
            # which moves beam scores only as much as the banned tokens were likely (Marian's <pad>: not at all).
            "suppress_sequences": [[self.vocabulary[token] for token in words] for words in config.bad_words_ids or []]
            or None,
            "return_end_token": True,
            "max_input_length": 0,  # the scripts truncate the inputs themselves
            "max_decoding_length": budget + len(forced),
            "min_decoding_length": min_steps,
            # early_stopping=True ends when `beams` hypotheses are done, as CTranslate2 does; 'never' searches to
            # the length limit, which a patience of the whole length budget gives.
            "patience": float(max(budget, 1)) if config.early_stopping == "never" else 1.0,
        }
        return options, [start, *forced]

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, config) -> torch.Tensor:
        """Token ids as `model.generate(input_ids, attention_mask, generation_config=config)` returns them."""
        options, prefix_ids = self.options(config)
        source = [
            [self.vocabulary[token] for token, keep in zip(row, mask, strict=True) if keep]
            for row, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True)
        ]
        # A converted model with a start token starts from it (Marian's from a zero embedding, whatever the token).
        given = prefix_ids if self.converted_start_token is None else prefix_ids[1:]
        prefix = [self.vocabulary[token] for token in given]
        eos = set(options["end_token"])
        forced_end = None if config.forced_eos_token_id is None else self.vocabulary[config.forced_eos_token_id]
        beam_forced_end = forced_end is not None and options["beam_size"] > 1
        if beam_forced_end:
            options["num_hypotheses"] = max(
                options["num_hypotheses"], round(options["beam_size"] * options["patience"])
            )
        results = self.translator.translate_batch(
            source, target_prefix=[prefix] * len(source) if prefix else None, return_scores=beam_forced_end, **options
        )
        outputs = [[list(hypothesis) for hypothesis in result.hypotheses] for result in results]
        if beam_forced_end:
            outputs = self.rank_with_forced_end(source, prefix, results, options, config.early_stopping)
        rows = []
        for hypotheses in outputs:
            for tokens in hypotheses[: config.num_return_sequences or 1]:
                # The forced tokens after the start token, the generated ones, and the forced end token.
                if forced_end is not None and (not tokens or tokens[-1] not in eos):
                    tokens = [*tokens, forced_end]
                rows.append([prefix_ids[0], *(self.token_ids[token] for token in tokens)])
        pad = config.pad_token_id if config.pad_token_id is not None else self.model.config.pad_token_id
        width = max(len(row) for row in rows)
        return torch.tensor([row + [pad] * (width - len(row)) for row in rows], dtype=torch.long)

    def rank_with_forced_end(self, source, prefix, results, options: dict, early_stopping) -> list[list[list[str]]]:
        """Beam search under forced_eos_token_id, ranked as transformers ranks it.

        CTranslate2 ran one step short (`options`), so a hypothesis cut at the length limit lacks the forced end
        token, which transformers scores 0 and counts in the length a score is divided by. An example whose search
        reached that last step is searched again to the limit, keeping every hypothesis that ended, and transformers'
        end of search is replayed: with early_stopping=True it stops at the first step by which `num_beams`
        hypotheses have ended (their length tells the step), and only a search that reaches the limit adds the cut
        hypotheses.
        """
        eos, beams, limit = set(options["end_token"]), options["beam_size"], options["max_decoding_length"]
        outputs = []
        for index, result in enumerate(results):
            hypotheses = [list(hypothesis) for hypothesis in result.hypotheses]
            if all(len(tokens) < limit for tokens in hypotheses):  # ended before the last step, as transformers does
                outputs.append(hypotheses)
                continue
            if early_stopping is True:
                full = {**options, "patience": float(max(limit, 1)), "num_hypotheses": beams * max(limit, 1)}
                result = self.translator.translate_batch(
                    [source[index]], target_prefix=[prefix] if prefix else None, return_scores=True, **full
                )[0]
                hypotheses = [list(hypothesis) for hypothesis in result.hypotheses]
            candidates = list(zip(hypotheses, result.scores, strict=True))
            if early_stopping is True:
                ended_by = sorted(len(tokens) for tokens in hypotheses if tokens[-1:] and tokens[-1] in eos)
                if len(ended_by) >= beams:  # transformers stopped at step ended_by[beams - 1]
                    stop = ended_by[beams - 1]
                    candidates = [(t, score) for t, score in candidates if t[-1:] and t[-1] in eos and len(t) <= stop]
            ranked = []
            for position, (tokens, score) in enumerate(candidates):
                if not (tokens and tokens[-1] in eos):  # cut at the limit: one more token, scored 0
                    score *= len(tokens) ** options["length_penalty"] / (len(tokens) + 1) ** options["length_penalty"]
                ranked.append((-score, position, tokens))
            outputs.append([tokens for _, _, tokens in sorted(ranked)])
        return outputs
