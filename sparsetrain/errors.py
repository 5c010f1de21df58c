"""The one error type for user mistakes: a bad recipe key, method parameter, shape or file."""


class ConfigError(ValueError):
    """A user-facing mistake; the message names the key or file and the rule it breaks."""
