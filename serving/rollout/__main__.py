"""``python -m serving.rollout supervise``: the serving container's entry point."""

import sys

from serving.rollout.compose import supervise

if sys.argv[1:] != ["supervise"]:
    raise SystemExit("usage: python -m serving.rollout supervise")
raise SystemExit(supervise())
