"""The PushT planning protocol end to end: pairs, exact starts, success rules, oracle, random, world model."""

import math

import numpy as np
import pytest
import torch
from cola_eval.adapter import ActionAdapter, AdapterConfig
from cola_eval.planning import (
    PlanningConfig,
    PlanningPair,
    Prediction,
    SimulatorModel,
    WorldModel,
    clone_env,
    evaluate_planning,
    is_strict_success,
    is_success,
    make_pairs,
)
from cola_eval.planning.costs import Goal, PixelMSECost, StatePoseCost, pose_cost
from cola_eval.planning.models import Observation, env_target
from cola_eval.planning.protocol import goal_of, restore_exactly
from cola_eval.planning.readout import frames_to_tensor
from cola_train.data import pusht_state, render_frame, restore_state, rollout_pusht
from cola_wm import ActionConditionedDiT, DiTConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EASY = PlanningConfig(horizon=6, samples=32, iterations=2, elite_fraction=0.125, budget=12, goal_offset=6)


@pytest.fixture(scope="module")
def episodes():
    return [rollout_pusht(reset_seed=500 + i, policy_seed=900 + i, length=40, index=i) for i in range(4)]


def test_pairs_are_fixed_distinct_and_goal_offset_apart(episodes):
    pairs = make_pairs(episodes, 12, goal_offset=25, seed=3)
    assert pairs == make_pairs(episodes, 12, goal_offset=25, seed=3)
    assert pairs != make_pairs(episodes, 12, goal_offset=25, seed=4)
    assert len(set(pairs)) == 12
    assert {p.episode for p in pairs} == set(range(4))
    for pair in pairs:
        assert pair.goal == pair.start + 25 and pair.goal < len(episodes[pair.episode])


def test_pair_errors(episodes):
    with pytest.raises(ValueError, match="no usable planning episodes"):
        make_pairs(episodes, 2, goal_offset=40)
    with pytest.raises(ValueError, match="no usable planning episodes"):
        make_pairs([], 2)
    with pytest.raises(ValueError, match="hold only"):
        make_pairs(episodes, 1000, goal_offset=25)


def test_start_is_rebuilt_exactly_and_goal_rendered_by_the_simulator(episodes):
    episode = episodes[1]
    env = restore_exactly(episode, 17)
    assert np.array_equal(pusht_state(env), episode.states[17])
    assert np.array_equal(render_frame(env), episode.frames[17])
    frame, state = goal_of(episode, PlanningPair(1, 3, 17))
    assert np.array_equal(frame, episode.frames[17]) and np.array_equal(state, episode.states[17])


def test_a_tampered_episode_is_refused(episodes):
    episode = episodes[0]
    tampered = type(episode)(
        frames=episode.frames,
        actions=episode.actions,
        states=episode.states + np.array([0, 0, 5, 0, 0], dtype=np.float32),
        index=episode.index,
        seed=episode.seed,
    )
    with pytest.raises(ValueError, match="does not replay"):
        restore_exactly(tampered, 10)


def test_success_rules_wrap_the_angle_and_strict_needs_the_agent():
    goal = np.array([100.0, 100.0, 250.0, 250.0, 0.05])
    near = np.array([100.0, 100.0, 262.0, 250.0, 2 * math.pi - 0.05])
    assert is_success(near, goal) and is_strict_success(near, goal)
    agent_away = near + np.array([30.0, 0, 0, 0, 0])
    assert is_success(agent_away, goal) and not is_strict_success(agent_away, goal)
    # jointly 12 px (block) and 16 px (agent) = 20 px: outside the strict rule, inside the block-only one.
    joint = near + np.array([16.0, 0, 0, 0, 0])
    assert is_success(joint, goal) and not is_strict_success(joint, goal)
    assert not is_success(near + np.array([0, 0, 9.0, 0, 0]), goal)
    assert not is_success(np.array([100.0, 100.0, 250.0, 250.0, 0.05 + math.pi / 9 + 0.01]), goal)


def test_pose_cost_is_position_plus_57_px_per_radian():
    cost = pose_cost(
        torch.tensor([[3.0, 4.0]]),
        torch.tensor([2 * math.pi - 0.1]),
        torch.tensor([0.0, 0.0]),
        torch.tensor(0.1),
    )
    assert abs(cost.item() - (5.0 + 57.0 * 0.2)) < 1e-4


def test_simulator_copy_predicts_free_motion_exactly(episodes):
    env = restore_state(episodes[2], 0)
    twin = clone_env(env)
    deltas = np.array([[0.0, 0.0], [5.0, -3.0], [-2.0, 4.0]])
    prediction = SimulatorModel().predict(
        Observation(env, frames_to_tensor(render_frame(env)), pusht_state(env)[:2]), deltas[None], frames=True
    )
    for h, delta in enumerate(deltas):
        env.step(env_target(env.unwrapped.agent.position, delta))
        twin.step(env_target(twin.agent.position, delta))
        assert np.allclose(prediction.states[0, h, :4], pusht_state(env)[:4], atol=1e-3)
    assert np.array_equal(pusht_state(twin), pusht_state(env))
    assert prediction.frames.shape == (1, 3, 3, 64, 64)
    assert torch.equal(prediction.frames[0, -1], frames_to_tensor(render_frame(env)))


def test_simulator_holds_each_action_for_its_repeat(episodes):
    """At frame skip k one planned action is one world-model transition: its target held for k env steps."""
    env = restore_state(episodes[1], 0)
    deltas = np.array([[30.0, -20.0], [-10.0, 25.0]])
    observation = Observation(env, frames_to_tensor(render_frame(env)), pusht_state(env)[:2])
    prediction = SimulatorModel(action_repeat=3).predict(observation, deltas[None], frames=True)
    for h, delta in enumerate(deltas):
        target = env_target(env.unwrapped.agent.position, delta)
        for _ in range(3):
            env.step(target)
        assert np.allclose(prediction.states[0, h, :4], pusht_state(env)[:4], atol=1e-3)
    assert torch.equal(prediction.frames[0, -1], frames_to_tensor(render_frame(env)))


def test_the_budget_counts_env_steps_under_an_action_repeat(episodes):
    config = PlanningConfig(horizon=2, samples=8, iterations=1, budget=12, goal_offset=6, action_repeat=3)
    pairs = make_pairs(episodes, 2, goal_offset=6, seed=1)
    oracle = evaluate_planning(episodes, "oracle", "state_pose", config=config, pairs=pairs)
    # 12 env steps, 2 actions of 3 steps per replan: at most 2 MPC steps a pair.
    assert oracle["mpc_steps"] <= 2 * len(pairs)
    assert all(p["steps_to_success"] is None or p["steps_to_success"] <= 12 for p in oracle["pairs"])
    assert oracle["config"]["action_repeat"] == 3
    with pytest.raises(ValueError, match="action_repeat=3"):
        evaluate_planning(episodes, SimulatorModel(), "state_pose", config=config, pairs=pairs)
    with pytest.raises(ValueError, match="action_repeat"):
        PlanningConfig(action_repeat=0)


def test_oracle_solves_easy_goals_and_beats_random(episodes):
    pairs = make_pairs(episodes, 4, goal_offset=EASY.goal_offset, seed=0)
    oracle = evaluate_planning(episodes, "oracle", "state_pose", config=EASY, pairs=pairs)
    random = evaluate_planning(episodes, "random", config=EASY, pairs=pairs)
    assert oracle["num_pairs"] == random["num_pairs"] == 4
    assert oracle["success"] >= 0.75, oracle["pairs"]
    assert oracle["success"] > random["success"]
    assert oracle["success_strict"] <= oracle["success"]
    assert oracle["seconds_per_mpc_step"] > 0 and random["seconds_per_mpc_step"] is None
    assert oracle["mean_final_block_error_px"] < random["mean_final_block_error_px"]
    assert [p["start"] for p in oracle["pairs"]] == [p.start for p in pairs]


@pytest.mark.parametrize("model", ["oracle", "random"])
def test_pairs_planned_in_parallel_processes_match_one_process(episodes, model):
    pairs = make_pairs(episodes, 3, goal_offset=EASY.goal_offset, seed=2)
    cost = "state_pose" if model == "oracle" else "block_pose"
    serial = evaluate_planning(episodes, model, cost, config=EASY, pairs=pairs)
    parallel = evaluate_planning(episodes, model, cost, config=EASY, pairs=pairs, workers=2)
    timing = ("seconds_per_mpc_step",)
    assert {k: v for k, v in parallel.items() if k not in timing} == {
        k: v for k, v in serial.items() if k not in timing
    }
    assert (parallel["seconds_per_mpc_step"] is None) == (model == "random")


def test_a_world_model_plans_in_one_process(episodes):
    with pytest.raises(ValueError, match="workers=1"):
        evaluate_planning(episodes, WorldModel(*tiny_world_model()), "pixel_mse", config=EASY, workers=2)
    with pytest.raises(ValueError, match="positive integer"):
        evaluate_planning(episodes, "oracle", "state_pose", config=EASY, workers=0)


def test_oracle_with_pixel_cost_and_mppi_runs(episodes):
    config = PlanningConfig(
        method="mppi", horizon=4, samples=8, iterations=1, budget=4, goal_offset=6, execute_steps=2
    )
    result = evaluate_planning(episodes, "oracle", "pixel_mse", config=config, num_pairs=1)
    assert result["cost"] == "pixel_mse" and result["method"] == "mppi" and result["mpc_steps"] == 2
    assert 0.0 <= result["success"] <= 1.0


def tiny_world_model(frame_size: int = 64) -> tuple[ActionConditionedDiT, ActionAdapter]:
    torch.manual_seed(0)
    wm = ActionConditionedDiT(
        DiTConfig(
            frame_size=frame_size,
            patch_size=16,
            num_frames=4,
            width=32,
            depth=1,
            heads=2,
            action_dim=8,
            action_width=16,
            action_depth=1,
            action_heads=2,
            time_embed_dim=32,
        )
    )
    adapter = ActionAdapter(
        AdapterConfig(action_in=2, tokens_per_action=2, num_codes=4, code_dim=4, hidden=8)
    )
    adapter.codebook.copy_(torch.randn(4, 4))
    return wm, adapter


def test_world_model_rolls_all_samples_out_in_one_batch(episodes):
    wm, adapter = tiny_world_model()
    batches = []
    wm.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    model = WorldModel(wm, adapter, euler_steps=2)
    env = restore_state(episodes[0], 5)
    observation = Observation(env, frames_to_tensor(render_frame(env)), pusht_state(env)[:2])
    prediction = model.predict(observation, np.random.default_rng(0).normal(size=(6, 3, 2)) * 40, frames=True)
    assert prediction.frames.shape == (6, 3, 3, 64, 64) and prediction.states is None
    assert batches == [6, 6]
    assert prediction.frames.abs().max() <= 1.0


def test_world_model_guides_its_rollouts_as_told_and_by_its_own_scale_when_not(episodes):
    wm, adapter = tiny_world_model()
    wm.config.guidance_scale = 3.0
    batches = []
    wm.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    env = restore_state(episodes[0], 5)
    observation = Observation(env, frames_to_tensor(render_frame(env)), pusht_state(env)[:2])
    deltas = np.random.default_rng(0).normal(size=(6, 3, 2)) * 40
    for scale, batch in ((1.0, 6), (4.0, 12), (None, 12)):
        batches.clear()
        WorldModel(wm, adapter, euler_steps=1, guidance_scale=scale).predict(observation, deltas, frames=True)
        assert batches == [batch], scale  # guided: conditional and null actions in one batch
    wm.config.guidance_scale = 1.0
    batches.clear()
    WorldModel(wm, adapter, euler_steps=1, guidance_scale=None).predict(observation, deltas, frames=True)
    assert batches == [6]
    with pytest.raises(ValueError, match="guidance_scale must be a finite number > 0"):
        PlanningConfig(guidance_scale=0.0)


def test_world_model_planning_runs_through_evaluate(episodes):
    wm, adapter = tiny_world_model()
    config = PlanningConfig(horizon=2, samples=4, iterations=1, budget=2, goal_offset=6, euler_steps=1)
    result = evaluate_planning(
        episodes, WorldModel(wm, adapter, euler_steps=1), "pixel_mse", config=config, num_pairs=1
    )
    assert result["model"] == "world_model" and result["mpc_steps"] == 1 and result["num_pairs"] == 1


def test_bad_input_errors(episodes):
    with pytest.raises(ValueError, match="empty"):
        evaluate_planning([], "oracle", "state_pose")
    wm, adapter = tiny_world_model(frame_size=32)
    with pytest.raises(ValueError, match="32x32 frames but the planning episodes have 64x64"):
        evaluate_planning(episodes, WorldModel(wm, adapter), "pixel_mse", config=EASY, num_pairs=1)
    with pytest.raises(ValueError, match="readout"):
        evaluate_planning(episodes, "oracle", "block_pose", config=EASY, num_pairs=1)
    with pytest.raises(ValueError, match="only the oracle"):
        evaluate_planning(episodes, WorldModel(*tiny_world_model()), "state_pose", config=EASY, num_pairs=1)
    with pytest.raises(ValueError, match="unknown model"):
        evaluate_planning(episodes, "dreamer", "state_pose")
    with pytest.raises(ValueError, match="unknown cost"):
        evaluate_planning(episodes, "oracle", "reward")
    wrong_columns = ActionAdapter(AdapterConfig(action_in=2, num_codes=4, code_dim=4, action_columns=[0, 1]))
    with pytest.raises(ValueError, match="deltas"):
        WorldModel(tiny_world_model()[0], wrong_columns)
    with pytest.raises(ValueError, match="predicted none"):
        PixelMSECost()(
            Prediction(frames=None, states=np.zeros((1, 1, 5))), Goal(torch.zeros(3, 4, 4), np.zeros(5))
        )
    with pytest.raises(ValueError, match="oracle"):
        StatePoseCost()(
            Prediction(frames=torch.zeros(1, 1, 3, 4, 4), states=None), Goal(torch.zeros(3, 4, 4), None)
        )


@pytest.mark.slow
def test_oracle_with_learned_pose_readout_beats_random_on_the_full_protocol():
    """The issue's comparison at small scale: goal 25 steps ahead, 50-step budget, CEM horizon 8."""
    from cola_eval.planning import labelled_frames, train_readout

    train = [rollout_pusht(reset_seed=i, policy_seed=100 + i, length=200, index=i) for i in range(20)]
    readout = train_readout(*labelled_frames(train), steps=1500)
    held_out = [
        rollout_pusht(reset_seed=5000 + i, policy_seed=6000 + i, length=80, index=i) for i in range(6)
    ]
    pairs = make_pairs(held_out, 6, goal_offset=25, seed=0)
    config = PlanningConfig(samples=64)
    oracle = evaluate_planning(held_out, "oracle", "block_pose", readout=readout, config=config, pairs=pairs)
    random = evaluate_planning(held_out, "random", config=config, pairs=pairs)
    assert oracle["success"] > random["success"]
    assert oracle["mean_final_block_error_px"] < random["mean_final_block_error_px"]
