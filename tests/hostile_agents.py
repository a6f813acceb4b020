"""Badly behaved agents for the hostile-input tests (a plain module, so worker processes can import it)."""

from __future__ import annotations

import time

from panoseek.envs.agent import submit


class Sleeper:
    """Never answers in time: sleeps in act()."""

    def reset(self, task_info):
        pass

    def act(self, observation):
        time.sleep(60)


class Interrupter:
    """Raises KeyboardInterrupt from act(), as an agent wrapping a Ctrl-C-aware library might."""

    def reset(self, task_info):
        pass

    def act(self, observation):
        raise KeyboardInterrupt


class Surrogate:
    """Replies with a lone surrogate, which json.loads can produce from an API reply."""

    def reset(self, task_info):
        pass

    def act(self, observation):
        return "<answer>rotate(10,0)</answer>\ud800" if observation["turn"] == 0 else submit(0.0, 0.0)


def broken_factory():
    raise RuntimeError("no weights here")


class Exiter:
    """Kills its own process, as a crash in native code would."""

    def reset(self, task_info):
        pass

    def act(self, observation):
        import os

        os._exit(3)
