"""The errors fomm-space raises. Every message says what went wrong and what to do.

What to do depends on where the reader is: a Python caller sets an argument, a CLI user
a flag, a person in the web page a control, a caller of the web API a parameter. A
message names the step once, as a ``{key}`` of :data:`ADVICE`, and is rendered for its
reader: ``str(error)`` for Python, ``error.render("cli")`` for the command line,
``error.render("page")`` for the page, ``error.render("api")`` for the web API (the
page's words where the API has none of its own).
"""

from __future__ import annotations

import re
from typing import Literal

Audience = Literal["python", "cli", "page", "api"]

ADVICE: dict[str, dict[str, str]] = {
    "no_crop": {"python": "turn face cropping off (crop=False)",
                "cli": "turn face cropping off (--no-crop)",
                "page": "untick Crop faces",
                "api": "set crop_faces=False"},
    "no_best_frame": {"python": "turn the best-frame search off (find_best_frame=False)",
                      "cli": "drop --find-best-frame",
                      "page": "untick Find best frame",
                      "api": "set find_best_frame=False"},
    "local_checkpoint": {"python": "pass config= and checkpoint= for a local file",
                         "cli": "give --config and --checkpoint for a local file",
                         "page": "ask whoever runs this app to start it with --config and --checkpoint"},
    "model_name": {"python": "a model name (load_model('vox')) to download one",
                   "cli": "a model name (--model) to download one",
                   "page": "another model",
                   "api": "another model (model=...; client.view_api() lists them)"},
    "give_config": {"python": "pass config=... or a model name",
                    "cli": "give --config, or --model with the name of a published model",
                    "page": "start the app with --config beside --checkpoint"},
    "cpu_device": {"python": "use device='cpu'",
                   "cli": "use --device cpu",
                   "page": "restart the app with --device cpu"},
    "cpu_precision": {"python": "use precision='fp32' or 'bf16'",
                      "cli": "use --precision fp32 or bf16",
                      "page": "restart the app with another precision"},
    "revision": {"python": "check revision= or the environment variable",
                 "cli": "check --revision or the environment variable",
                 "page": "ask whoever runs this app to check the environment variable"},
    "repo_id": {"python": "check repo_id= or the environment variable",
                "cli": "check --repo-id or the environment variable",
                "page": "ask whoever runs this app to check the environment variable"},
}
_KEY = re.compile(r"\{(" + "|".join(ADVICE) + r")\}")


def render(template: str, audience: Audience = "python") -> str:
    """``template`` with each ``{key}`` of :data:`ADVICE` worded for ``audience``."""
    return _KEY.sub(lambda m: ADVICE[m.group(1)].get(audience, ADVICE[m.group(1)]["page"]), template)


class FommError(Exception):
    """Base class of every error fomm-space raises on purpose.

    ``str(error)`` is worded for Python callers; :meth:`render` for the CLI or the page.
    """

    def __init__(self, message: str = "", *args: object):
        self.template = message
        super().__init__(render(message), *args)

    def render(self, audience: Audience = "python") -> str:
        """The message, its advice worded for ``audience``: "python", "cli", "page" or "api"."""
        return render(self.template, audience)


class ConfigError(FommError):
    """A model config is missing, unreadable or not a FOMM config."""


class ModelNotFoundError(FommError):
    """An unknown model name, or a checkpoint that can't be downloaded or found."""


class CheckpointError(FommError):
    """A checkpoint file that is corrupt, unsafe, of another model or fails its hash."""


class InputError(FommError):
    """A source image, driving video or option that can't be used."""


class OutputError(FommError):
    """An output that can't be written: its encoder failed (a full disk, a lost folder)."""


__all__ = ["ADVICE", "CheckpointError", "ConfigError", "FommError", "InputError", "ModelNotFoundError", "OutputError",
           "render"]
