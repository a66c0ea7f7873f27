"""The errors fomm-space raises. Every message says what went wrong and what to do."""


class FommError(Exception):
    """Base class of every error fomm-space raises on purpose."""


class ConfigError(FommError):
    """A model config is missing, unreadable or not a FOMM config."""


class ModelNotFoundError(FommError):
    """An unknown model name, or a checkpoint that can't be downloaded or found."""


class CheckpointError(FommError):
    """A checkpoint file that is corrupt, unsafe, of another model or fails its hash."""


class InputError(FommError):
    """A source image, driving video or option that can't be used."""


__all__ = ["CheckpointError", "ConfigError", "FommError", "InputError", "ModelNotFoundError"]
