"""PushT's layout in one place: the arena, the action and state columns. Collection, the scripted policy,
real-action runs and cola-eval's planning and controllability read them here (no simulator import)."""

# The arena is 512 px on a side; states and actions hold positions in arena px.
ARENA_PX = 512.0
ACTION_NAMES = ["target_x", "target_y", "delta_x", "delta_y"]
# The commanded deltas: what a real-action run conditions on and the planner searches over.
DELTA_COLUMNS = [2, 3]
STATE_NAMES = ["agent_x", "agent_y", "block_x", "block_y", "block_angle"]
AGENT_STATE_NAMES = ("agent_x", "agent_y")
